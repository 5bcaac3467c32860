#pragma once
// How many CPUs this process may run on, and how many of them other processes keep busy:
// mpirun binds each rank to one core by default, and a rank whose threads outnumber its free
// cores runs slower than with one thread (Note [Busy cores]).

namespace recvae {

/// CPUs in this thread's affinity mask (sched_getaffinity); std::thread::hardware_concurrency()
/// where the mask cannot be read; at least 1.
int usable_cpus();

/// CPUs of this thread's affinity mask that were busy more than half of a `seconds`-long sample
/// of /proc/stat (this process sleeps meanwhile, so the load is other processes'); 0 where
/// /proc/stat cannot be read.
int busy_cpus(double seconds);

}  // namespace recvae
