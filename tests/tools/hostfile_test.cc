// ps_launch --hostfile's file format and remote command lines (tools/hostfile.h).
#include "tools/hostfile.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

TEST(Hostfile, HostsWithAndWithoutRoles) {
  auto hosts = ParseHostfile(
      "# the cluster\nnode1\n\nnode2 roles=server   # big memory\n10.0.0.7\troles=worker\n"
      "node4 roles=worker,server\n",
      "hosts");
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  ASSERT_EQ(hosts->size(), 4u);
  EXPECT_EQ((*hosts)[0].name, "node1");
  EXPECT_TRUE((*hosts)[0].servers && (*hosts)[0].workers);
  EXPECT_TRUE((*hosts)[1].servers && !(*hosts)[1].workers);
  EXPECT_EQ((*hosts)[2].name, "10.0.0.7");
  EXPECT_TRUE(!(*hosts)[2].servers && (*hosts)[2].workers);
  EXPECT_TRUE((*hosts)[3].servers && (*hosts)[3].workers);
}

TEST(Hostfile, ErrorsNameTheFileAndLine) {
  auto role = ParseHostfile("node1\nnode2 roles=sever\n", "hosts");
  ASSERT_FALSE(role.ok());
  EXPECT_EQ(role.status().message(), "hosts:2: unknown role 'sever' (server or worker)");
  auto option = ParseHostfile("node1 slots=4\n", "hosts");
  ASSERT_FALSE(option.ok());
  EXPECT_EQ(option.status().message(),
            "hosts:1: unknown option 'slots=4' (expected roles=server,worker)");
  auto empty = ParseHostfile("# nothing\n\n", "hosts");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("hosts: no hosts"));
  auto no_servers = ParseHostfile("a roles=worker\n", "hosts");
  ASSERT_FALSE(no_servers.ok());
  EXPECT_THAT(no_servers.status().message(), HasSubstr("no host takes servers"));
  auto missing = ReadHostfile("/nonexistent/hosts");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("--hostfile: "));
}

TEST(Hostfile, ShellCommandQuotesWhatTheShellWouldSplit) {
  EXPECT_EQ(ShellCommand({"/opt/ps/bin/ps_server", "--scheduler", "node1:7000", "--set=a.b=1"}),
            "/opt/ps/bin/ps_server --scheduler node1:7000 --set=a.b=1");
  EXPECT_EQ(ShellCommand({"echo", "two words", "it's", ""}), "echo 'two words' 'it'\\''s' ''");
}

}  // namespace
}  // namespace ps
