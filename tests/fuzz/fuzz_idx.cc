// libFuzzer target: the IDX reader (images and labels). The input is split
// at its first 0xFF 0x00 0xFF 0x00 into the two files.
#include <string>

#include "worker/idx_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const size_t cut = bytes.find(std::string("\xff\x00\xff\x00", 4));
  const std::string images = cut == std::string::npos ? bytes : bytes.substr(0, cut);
  const std::string labels = cut == std::string::npos ? std::string() : bytes.substr(cut + 4);
  (void)ps::ParseIdxPair(images, "fuzz-images.idx", labels, "fuzz-labels.idx");
  return 0;
}
