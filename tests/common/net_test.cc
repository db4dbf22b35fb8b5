// Bind and advertised addresses (common/net.h).
#include "common/net.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <climits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

const absl::Duration kNoWait = absl::ZeroDuration();

TEST(Net, AdvertisesTheBindHostAndTheBoundPortByDefault) {
  auto a = AdvertisedAddress("", "127.0.0.1", 4321, kNoWait);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, "127.0.0.1:4321");
}

TEST(Net, AWildcardBindAdvertisesTheHostname) {
  char name[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(gethostname(name, sizeof(name) - 1), 0);
  auto a = AdvertisedAddress("", "0.0.0.0", 77, kNoWait);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, std::string(name) + ":77");
}

TEST(Net, AnAdvertisedNameKeepsTheBoundPortUnlessItGivesOne) {
  auto host_only = AdvertisedAddress("localhost", "0.0.0.0", 5000, kNoWait);
  ASSERT_TRUE(host_only.ok()) << host_only.status();
  EXPECT_EQ(*host_only, "localhost:5000");
  auto with_port = AdvertisedAddress("localhost:7100", "0.0.0.0", 5000, kNoWait);
  ASSERT_TRUE(with_port.ok()) << with_port.status();
  EXPECT_EQ(*with_port, "localhost:7100");
}

TEST(Net, Ipv6LiteralsAreBracketed) {
  auto bare = AdvertisedAddress("::1", "::", 9, kNoWait);
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(*bare, "[::1]:9");
  auto with_port = AdvertisedAddress("[::1]:10", "::", 9, kNoWait);
  ASSERT_TRUE(with_port.ok()) << with_port.status();
  EXPECT_EQ(*with_port, "[::1]:10");
}

TEST(Net, BadAdvertisedAddressesAreNamed) {
  auto wildcard = AdvertisedAddress("0.0.0.0", "0.0.0.0", 9, kNoWait);
  ASSERT_FALSE(wildcard.ok());
  EXPECT_THAT(wildcard.status().message(), HasSubstr("--advertise: '0.0.0.0' is a wildcard"));
  auto zero = AdvertisedAddress("localhost:0", "0.0.0.0", 9, kNoWait);
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(zero.status().message(), HasSubstr("port 0 cannot be advertised"));
  auto port = AdvertisedAddress("localhost:http", "0.0.0.0", 9, kNoWait);
  ASSERT_FALSE(port.ok());
  EXPECT_THAT(port.status().message(), HasSubstr("--advertise: 'localhost:http' is not host:port"));
}

TEST(Net, AnUnresolvableNameIsNamedWithTheFlagAfterItsWait) {
  // .invalid never resolves (RFC 2606).
  const absl::Time start = absl::Now();
  absl::Status s = ResolveHost("no-such-host.invalid", "--scheduler", absl::Milliseconds(300));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("--scheduler: cannot resolve host 'no-such-host.invalid'"));
  EXPECT_THAT(s.message(), HasSubstr("within 300ms"));
  auto a = AdvertisedAddress("no-such-host.invalid", "0.0.0.0", 9, kNoWait);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(),
              HasSubstr("--advertise: cannot resolve host 'no-such-host.invalid'"));
}

TEST(Net, ParseHostPort) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(ParseHostPort("scheduler:7000", "--scheduler", &host, &port).ok());
  EXPECT_EQ(host, "scheduler");
  EXPECT_EQ(port, 7000);
  ASSERT_TRUE(ParseHostPort("[::1]:7000", "--scheduler", &host, &port).ok());
  EXPECT_EQ(host, "[::1]");
  for (const char* bad : {"scheduler", ":7000", "host:70000", "host:x", "[::1]"}) {
    absl::Status s = ParseHostPort(bad, "--scheduler", &host, &port);
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_THAT(s.message(), HasSubstr("--scheduler: '")) << bad;
  }
}

TEST(Net, WhyCannotBindSaysTheAddressIsInUse) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  EXPECT_EQ(WhyCannotBind("127.0.0.1", ntohs(addr.sin_port)), "Address already in use");
  close(fd);
  EXPECT_THAT(WhyCannotBind("no-such-host.invalid", 0),
              HasSubstr("cannot resolve 'no-such-host.invalid'"));
}

}  // namespace
}  // namespace ps
