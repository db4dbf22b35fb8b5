// SIGINT/SIGTERM handling for the role binaries: the handler only sets a
// flag that main loops poll. Process-wide by nature; call Install once from main.
#ifndef PS_COMMON_SIGNALS_H_
#define PS_COMMON_SIGNALS_H_

namespace ps {

void InstallStopSignalHandlers();
bool StopRequested();

// Makes the kernel send SIGKILL to this process when its parent dies, so a
// killed launcher leaves no process behind. Returns false if the parent is
// already gone.
bool DieWithParent();

}  // namespace ps

#endif  // PS_COMMON_SIGNALS_H_
