#include "capture/transparent_delivery.h"

#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <memory>
#include <string>
#include <thread>

#include "sluice/common/unique_fd.h"

namespace sluice::agent {
namespace {

constexpr int kLoopbackIfindex = 1;  // in every network namespace (the kernel's LOOPBACK_IFINDEX)

template <typename T, void (*Free)(T*)>
struct NlDeleter {
  void operator()(T* p) const { Free(p); }
};
using NlSocket = std::unique_ptr<nl_sock, NlDeleter<nl_sock, nl_socket_free>>;
using Rule = std::unique_ptr<rtnl_rule, NlDeleter<rtnl_rule, rtnl_rule_put>>;
using Route = std::unique_ptr<rtnl_route, NlDeleter<rtnl_route, rtnl_route_put>>;
using Addr = std::unique_ptr<nl_addr, NlDeleter<nl_addr, nl_addr_put>>;

std::unexpected<Error> nlFail(const std::string& what, int err) { return fail(fmt::format("{}: {}", what, nl_geterror(err))); }

// The rule choosing the delivery table for marked packets of `family`. Already there: fine.
Status addRule(nl_sock* sock, int family, const TransparentDelivery& d) {
  Rule rule(rtnl_rule_alloc());
  if (!rule) return fail("out of memory");
  rtnl_rule_set_family(rule.get(), family);
  rtnl_rule_set_prio(rule.get(), d.rulePriority);
  rtnl_rule_set_mark(rule.get(), d.mark);
  rtnl_rule_set_mask(rule.get(), 0xffffffff);
  rtnl_rule_set_table(rule.get(), d.table);
  rtnl_rule_set_action(rule.get(), FR_ACT_TO_TBL);
  int err = rtnl_rule_add(sock, rule.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0 && err != -NLE_EXIST) return nlFail(fmt::format("rule fwmark {:#x} lookup {}", d.mark, d.table), err);
  return {};
}

// "local default dev lo table <table>" for `family`.
Status addLocalDefault(nl_sock* sock, int family, const TransparentDelivery& d) {
  Route route(rtnl_route_alloc());
  if (!route) return fail("out of memory");
  nl_addr* parsed = nullptr;
  int err = nl_addr_parse(family == AF_INET ? "0.0.0.0/0" : "::/0", family, &parsed);
  if (err < 0) return nlFail("default prefix", err);
  Addr any(parsed);
  rtnl_route_set_family(route.get(), static_cast<uint8_t>(family));
  rtnl_route_set_table(route.get(), d.table);
  rtnl_route_set_type(route.get(), RTN_LOCAL);
  rtnl_route_set_scope(route.get(), RT_SCOPE_HOST);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  if ((err = rtnl_route_set_dst(route.get(), any.get())) < 0) return nlFail("route destination", err);
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  if (hop == nullptr) return fail("out of memory");
  rtnl_route_nh_set_ifindex(hop, kLoopbackIfindex);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  err = rtnl_route_add(sock, route.get(), NLM_F_CREATE | NLM_F_REPLACE);
  if (err < 0) return nlFail(fmt::format("route local default dev lo table {}", d.table), err);
  return {};
}

// Everything, from a thread already inside the pod's namespace.
Status setUpInside(const TransparentDelivery& d) {
  // /proc/sys/net is the namespace of the thread that opens it; sysctl files are written in place.
  auto set = [](const std::string& name) -> Status {
    std::string path = "/proc/sys/net/" + name;
    UniqueFd sysctl(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!sysctl || ::write(sysctl.get(), "1", 1) != 1) return failErrno("set " + path);
    return {};
  };
  SLUICE_TRY(set("ipv4/tcp_fwmark_accept"), "the app's sockets");
  // The kernel's own answers (a reset from a closed port, an ICMP error) take the mark of what
  // they answer, so a delivery to a port nobody listens on is refused at once, not timed out.
  SLUICE_TRY(set("ipv4/fwmark_reflect"), "replies");
  NlSocket sock(nl_socket_alloc());
  if (!sock) return fail("netlink socket: out of memory");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) return nlFail("netlink connect", err);
  SLUICE_TRY(addRule(sock.get(), AF_INET, d), "IPv4");
  SLUICE_TRY(addLocalDefault(sock.get(), AF_INET, d), "IPv4");
  if (::access("/proc/sys/net/ipv6", F_OK) != 0) return {};  // no IPv6 in this namespace
  SLUICE_TRY(set("ipv6/fwmark_reflect"), "replies");
  SLUICE_TRY(addRule(sock.get(), AF_INET6, d), "IPv6");
  SLUICE_TRY(addLocalDefault(sock.get(), AF_INET6, d), "IPv6");
  return {};
}

}  // namespace

Status enableTransparentDelivery(int podNetnsFd, const TransparentDelivery& delivery) {
  Status result = fail("not run");
  // setns() moves only the calling thread: a thread of its own, which ends with the work.
  std::thread worker([&] {
    if (::setns(podNetnsFd, CLONE_NEWNET) != 0) {
      result = failErrno("enter the pod's network namespace");
      return;
    }
    result = setUpInside(delivery);
  });
  worker.join();
  if (!result) return fail(std::move(result.error()).context("transparent delivery"));
  return {};
}

}  // namespace sluice::agent
