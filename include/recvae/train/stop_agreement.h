#pragma once
// The ranks' agreement on a stop request (stop_signal.h): a signal may reach them at different
// moments, so every place that may stop asks all ranks at once and all stop together.

namespace recvae {

class Communicator;

/// Whether any rank has a stop request (a collective: every rank calls it at the same point).
bool stop_agreed(Communicator& comm);

}  // namespace recvae
