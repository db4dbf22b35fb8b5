// Helpers for the multi-process tests: where the binaries are, running a
// command with a deadline and capturing its output, finding stray processes.
#ifndef PS_TESTS_TEST_UTIL_H_
#define PS_TESTS_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ps::testing {

// Directory of the ps_* binaries of this build (fixed at compile time).
std::string BinDir();
// The source tree (for examples/ and data/), fixed at compile time.
std::string SourceDir();
// A fresh directory for one test.
std::string NewTempDir(const std::string& name);

struct CommandResult {
  int exit_code = -1;    // 128 + signal if killed; -1 if it timed out (then killed)
  std::string output;    // stdout and stderr interleaved
};

// Runs argv[0] with argv, waiting at most `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout);

// Runs build/bin/ps_launch on `config` (relative to the source tree, e.g.
// "examples/spambase_lr.yaml") with its output in `out`, the given --set
// overrides and extra flags; waits at most `timeout`.
CommandResult Launch(const std::string& config, const std::string& out,
                     const std::vector<std::string>& sets, const std::vector<std::string>& extra = {},
                     absl::Duration timeout = absl::Seconds(300));

// pids of live processes whose command line contains `needle`.
std::vector<int> ProcessesMentioning(const std::string& needle);

// "127.0.0.1:PORT" of a job's scheduler, from scheduler.port in the job's
// log folder ("127.0.0.1:" if the file is not there yet).
std::string SchedulerAddress(const std::string& log_dir);

// pids of the live `binary` processes ("ps_server", "ps_worker") of the job
// whose scheduler is at `scheduler`; with `standby` false, those started
// without --standby only.
std::vector<int> JobProcesses(const std::string& scheduler, const std::string& binary,
                              bool standby = true);

// TCP ports process `pid` listens on.
std::vector<int> ListeningPorts(int pid);

// Waits until the file at `path` contains `needle` or `deadline` passes.
bool WaitForText(const std::string& path, const std::string& needle, absl::Time deadline);

// Writes a file.
void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

// The number after "key": at the first occurrence of `key` after `anchor`
// in a JSON text (NaN if absent). Enough for metrics.json.
double JsonNumber(const std::string& json, const std::string& anchor, const std::string& key);

// How much slower this build runs (sanitizers: several times): tests scale
// the failure-detection timeouts they configure by it.
inline int SlowFactor() {
#if defined(PS_TSAN) || defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return 4;
#else
  return 1;
#endif
}

// A port that nothing listens on at the moment of the call.
int UnusedPort();

// "--token_file=F" for a hand-started process of `role` ("scheduler" or
// "admin": the job secret; "server"; "worker"), from token files made once
// per test process with `psctl keygen`.
std::string TokenFlag(const std::string& role);
std::string TokenPath(const std::string& role);

}  // namespace ps::testing

#endif  // PS_TESTS_TEST_UTIL_H_
