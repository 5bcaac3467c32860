#pragma once
// Graceful stop on SIGTERM / SIGUSR1 (what Slurm sends before preemption or the time limit):
// the handler only sets a flag; the trainer polls it between steps (collectively, so all ranks
// stop at the same step), writes a checkpoint and exits with kExitCheckpointedOnSignal.

namespace recvae {

/// Exit status of a run that stopped on a signal after writing a checkpoint: requeue it.
constexpr int kExitCheckpointedOnSignal = 3;

/// Installs the SIGTERM and SIGUSR1 handlers.
void install_stop_signal_handlers();
/// Whether a stop was requested on this process.
bool stop_requested();
/// Requests a stop (the handlers call it; tests too).
void request_stop();
/// Forgets a request (tests).
void clear_stop_request();

}  // namespace recvae
