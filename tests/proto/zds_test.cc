// The agent <-> tunnel messages survive the wire: what the agent encodes, the tunnel decodes,
// and garbage is refused rather than half-read.
#include <gtest/gtest.h>

#include "sluice/zds/v1/zds.pb.h"

namespace {

TEST(Zds, AddWorkloadRoundTrips) {
  sluice::zds::v1::WorkloadRequest request;
  auto* workload = request.mutable_add()->mutable_workload();
  workload->set_name("web-7d9f");
  workload->set_namespace_("shop");
  workload->set_service_account("web");
  workload->set_uid("c0ffee");
  workload->add_addresses("10.244.1.2");
  workload->add_addresses("fd00:10:244:1::2");
  std::string wire = request.SerializeAsString();

  sluice::zds::v1::WorkloadRequest decoded;
  ASSERT_TRUE(decoded.ParseFromString(wire));
  ASSERT_EQ(decoded.payload_case(), sluice::zds::v1::WorkloadRequest::kAdd);
  EXPECT_EQ(decoded.add().workload().namespace_(), "shop");
  EXPECT_EQ(decoded.add().workload().addresses_size(), 2);
  EXPECT_EQ(decoded.add().workload().addresses(1), "fd00:10:244:1::2");
}

TEST(Zds, TruncatedMessageIsRefused) {
  sluice::zds::v1::WorkloadRequest request;
  request.mutable_add()->mutable_workload()->set_name("a-long-enough-name");
  std::string wire = request.SerializeAsString();
  wire.resize(wire.size() - 3);
  sluice::zds::v1::WorkloadRequest decoded;
  EXPECT_FALSE(decoded.ParseFromString(wire));
}

}  // namespace
