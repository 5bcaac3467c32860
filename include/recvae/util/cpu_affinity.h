#pragma once
// How many CPUs this process may run on: mpirun binds each rank to one core by default, and a
// rank whose threads outnumber its cores runs slower than with one thread.

namespace recvae {

/// CPUs in this thread's affinity mask (sched_getaffinity); std::thread::hardware_concurrency()
/// where the mask cannot be read; at least 1.
int usable_cpus();

}  // namespace recvae
