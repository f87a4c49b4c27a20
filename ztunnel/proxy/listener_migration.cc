#include "proxy/listener_migration.h"

#include <bpf/libbpf.h>

#include "sluice_reuseport.skel.h"

namespace sluice::ztunnel {

void ListenerMigration::Deleter::operator()(sluice_reuseport* skeleton) const { sluice_reuseport__destroy(skeleton); }

Result<ListenerMigration> ListenerMigration::load() {
  ListenerMigration migration;
  migration.skeleton_.reset(sluice_reuseport__open_and_load());
  if (!migration.skeleton_) return failErrno("load the listener hand-over program (sk_reuseport/migrate)");
  return migration;
}

int ListenerMigration::programFd() const { return bpf_program__fd(skeleton_->progs.sluice_reuseport_migrate); }

}  // namespace sluice::ztunnel
