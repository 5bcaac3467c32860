// recvae_bench: ms per encoder and decoder step, evaluation users/s and an epoch estimate on
// synthetic data of a named shape (or on a split file), on one or many ranks.
#include <mpi.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <type_traits>
#include <vector>

#include "recvae/dist/comm.h"
#include "recvae/util/config.h"
#include "recvae/dist/device_select.h"
#include "recvae/dist/device_info.h"
#include "recvae/util/error.h"
#include "recvae/data/h5_dataset.h"
#include "recvae/util/json.h"
#include "recvae/data/synth.h"
#include "recvae/models/registry.h"
#include "recvae/train/epoch_report.h"
#include "recvae/train/trainer.h"

namespace {

const char* kUsage =
    "usage: recvae_bench [--preset ml-20m|netflix|msd|tiny | --data FILE.h5] [options]\n"
    "       mpirun -np N recvae_bench [...]\n"
    "\n"
    "Times training steps (per phase of the model's schedule; --set model.type=multvae etc.) and\n"
    "evaluation on synthetic data of a named shape (generated\n"
    "in a temporary file) or on an existing split file.\n"
    "\n"
    "  --preset P      data shape (default ml-20m; see recvae_synth --help)\n"
    "  --data FILE     use this split file instead of synthetic data\n"
    "  --steps N       measured steps per phase (default 5, after 2 warm-up steps)\n"
    "  --no-eval       skip the evaluation timing\n"
    "  --json FILE     also write the figures as JSON (rank 0)\n"
    "  --collectives   time the gradient collectives alone (all-reduce, reduce-scatter, all-gather of\n"
    "                  fp32 buffers from 4 KB to 64 MB) instead of a model; with --json, the figures\n"
    "                  the scaling model (launch/analysis/scaling_model.py) fits a link's latency and\n"
    "                  bandwidth to\n"
    "  --set K=V       any config key, e.g. --set train.batch_size=4096 --set train.threads=1\n"
    "  --help          this text\n";

double peak_rss_gb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is in KiB on Linux
}

// Seconds per call of `f`, the slowest rank's mean over enough repetitions for ~0.2 s.
template <class F>
double seconds_per_call(recvae::Communicator& comm, F&& f) {
  using Clock = std::chrono::steady_clock;
  f();  // warm-up (connections, buffers)
  comm.barrier();
  std::int64_t reps = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    f();
    ++reps;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    std::int64_t go_on = elapsed < 0.2 && reps < 1000 ? 1 : 0;  // every rank stops at the same count
    comm.allreduce_max_host(&go_on, 1);
    if (!go_on) break;
  } while (true);
  double per = elapsed / static_cast<double>(reps);
  std::int64_t micros = static_cast<std::int64_t>(per * 1e6);
  comm.allreduce_max_host(&micros, 1);
  return static_cast<double>(micros) / 1e6;
}

// --collectives: the cost of the collectives a step issues, by buffer size.
int time_collectives(const std::string& json_path) {
  auto comm = recvae::make_mpi_communicator();
  const int n = comm->size();
  if (comm->rank() == 0)
    std::printf("recvae_bench: collectives over %d rank(s), backend %s (seconds per call, slowest rank)\n", n,
                comm->backend().c_str());
  if (comm->rank() == 0) std::printf("  %12s %14s %14s %14s\n", "bytes", "all-reduce", "reduce-scatter", "all-gather");
  std::string rows;
  for (std::int64_t bytes = 4096; bytes <= (64 << 20); bytes *= 4) {
    const std::int64_t block = (bytes / 4 + n - 1) / n;
    std::vector<float> a(static_cast<size_t>(block * n), 1.0f), b(static_cast<size_t>(block), 0.0f);
    const double ar = seconds_per_call(*comm, [&] { comm->allreduce_sum(a.data(), a.size()); });
    const double rs = seconds_per_call(*comm, [&] {
      comm->reduce_scatter_sum(a.data(), b.data(), static_cast<size_t>(block), recvae::WireType::kFloat32);
    });
    const double ag = seconds_per_call(
        *comm, [&] { comm->allgather_inplace(a.data(), static_cast<size_t>(block), recvae::WireType::kFloat32); });
    if (comm->rank() == 0) std::printf("  %12lld %14.6f %14.6f %14.6f\n", static_cast<long long>(bytes), ar, rs, ag);
    recvae::JsonObject r;
    r.add("bytes", block * n * 4)
        .add("allreduce_seconds", ar)
        .add("reduce_scatter_seconds", rs)
        .add("allgather_seconds", ag);
    rows += (rows.empty() ? "" : ", ") + r.str();
  }
  if (comm->rank() == 0 && !json_path.empty())
    std::ofstream(json_path) << "{\"world_size\": " << n << ", \"backend\": \"" << comm->backend()
                             << "\", \"collectives\": [" << rows << "]}\n";
  return 0;
}

int run(int argc, char** argv) {
  std::string preset = "ml-20m", data, json_path;
  int steps = 5;
  bool eval = true, collectives = false;
  std::vector<std::string> overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw recvae::InputError("option " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--preset") {
      preset = value();
    } else if (a == "--data") {
      data = value();
    } else if (a == "--steps") {
      try {
        steps = std::stoi(value());
      } catch (const std::exception&) {
        throw recvae::InputError("--steps expects an integer");
      }
      if (steps < 1) throw recvae::InputError("--steps must be >= 1");
    } else if (a == "--no-eval") {
      eval = false;
    } else if (a == "--collectives") {
      collectives = true;
    } else if (a == "--json") {
      json_path = value();
    } else if (a == "--set") {
      overrides.push_back(value());
    } else {
      throw recvae::InputError("unknown option '" + a + "' (see --help)");
    }
  }

  const recvae::ProcessInfo proc = recvae::init_process();
  const bool root = proc.rank == 0;
  if (collectives) return time_collectives(json_path);
  std::string tmp_file;
  if (data.empty()) {
    // Rank 0 generates the data set; every rank then reads its own shard of it.
    recvae::SynthOptions opts = recvae::synth_preset(preset);
    tmp_file =
        (std::filesystem::temp_directory_path() / ("recvae_bench_" + preset + "_" + std::to_string(::getpid()) + ".h5"))
            .string();
    int len = static_cast<int>(tmp_file.size());
    MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
    tmp_file.resize(static_cast<size_t>(len));
    MPI_Bcast(tmp_file.data(), len, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (root) {
      std::fprintf(stderr, "recvae_bench: generating the %s-shape data set\n", preset.c_str());
      recvae::write_split_file(tmp_file, recvae::apply_protocol(recvae::generate_synthetic(opts, false),
                                                                recvae::synth_protocol(opts), false));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    data = tmp_file;
  }

  std::string yaml = "data: {path: '" + data + "'}\noutput: {dir: /tmp/recvae_bench_run, progress_seconds: 0}\n";
  recvae::Config config = recvae::parse_config(yaml, "recvae_bench", overrides);
  auto comm = recvae::make_communicator(config);
  recvae::Trainer trainer(config, *comm);
  const std::int64_t users = trainer.num_train_users();
  const std::int64_t steps_per_pass = (users + config.train.batch_size - 1) / config.train.batch_size;

  using Clock = std::chrono::steady_clock;
  const bool fitted = trainer.any_model().visit(
      [](auto& m) { return std::is_base_of_v<recvae::CandidateModel, std::decay_t<decltype(m)>>; });
  if (fitted) {  // closed-form models: time the first fit and an evaluation
    comm->barrier();
    const auto t0 = Clock::now();
    const std::string name = trainer.fit(0);
    double fit_s = std::chrono::duration<double>(Clock::now() - t0).count();
    comm->allreduce_sum_host(&fit_s, 1);  // mean over ranks
    fit_s /= comm->size();
    const auto te = Clock::now();
    const std::int64_t eval_users = eval ? trainer.evaluate(false).users : 0;
    const double eval_s = std::chrono::duration<double>(Clock::now() - te).count();
    double rss = peak_rss_gb();
    comm->allreduce_sum_host(&rss, 1);
    if (root) {
      std::printf("recvae_bench: model %s (%s), %s, %lld train users x %lld items, %d rank(s), %d thread(s) per rank\n",
                  config.model.type.c_str(), name.c_str(),
                  tmp_file.empty() ? data.c_str() : (preset + " shape").c_str(), static_cast<long long>(users),
                  static_cast<long long>(trainer.num_items()), comm->size(), torch::get_num_threads());
      std::printf("  %-28s %10.2f s\n", "fit", fit_s);
      if (eval) std::printf("  %-28s %10.0f users/s\n", "evaluation", eval_users / std::max(eval_s, 1e-9));
      std::printf("  %-28s %10.2f GB (sum over ranks)\n", "peak host memory", rss);
      if (!json_path.empty()) {
        recvae::JsonObject j;
        j.add("data", tmp_file.empty() ? data : preset)
            .add("model", config.model.type)
            .add("fit", name)
            .add("train_users", users)
            .add("items", trainer.num_items())
            .add("world_size", comm->size())
            .add("fit_seconds", fit_s)
            .add("peak_host_memory_gb", rss);
        std::ofstream(json_path) << j.str() << "\n";
      }
    }
    if (root && !tmp_file.empty()) std::filesystem::remove(tmp_file);
    return 0;
  }
  // A pass truncated to `steps` steps, after a warm-up pass: the time per step includes the
  // per-pass permutation and the periodic loss checks, as in training.
  auto time_steps = [&](const recvae::PassSpec& spec, recvae::PassStats& out) {
    recvae::PassSpec warm = spec, timed = spec;
    warm.pass += 100;  // other random streams than the timed pass
    timed.pass += 200;
    trainer.train_pass(0, warm, 2);  // warm-up
    comm->barrier();
    const auto t0 = Clock::now();
    recvae::PassStats st = trainer.train_pass(0, timed, steps);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / st.steps;
    out = st;
    comm->allreduce_sum_host(&ms, 1);  // mean over ranks
    return ms / comm->size();
  };
  // One timing per phase of the model's schedules (RecVAE: encoder, decoder; RaCT: its actor's,
  // then critic_features, critic, actor_critic; the others: joint), in the order a run meets
  // them (RaCT's critic needs the moments its measuring pass sets).
  const std::vector<recvae::PassSpec> schedule = trainer.schedule(0);
  std::vector<recvae::PassSpec> every_phase;
  for (int e = 0; e < std::max(1, config.train.epochs); ++e)
    for (const auto& spec : trainer.schedule(e)) every_phase.push_back(spec);
  std::vector<std::string> phases;
  std::vector<double> phase_ms;
  std::vector<recvae::PassStats> phase_stats;
  for (const auto& spec : every_phase) {
    if (std::find(phases.begin(), phases.end(), spec.phase) != phases.end()) continue;
    recvae::PassStats st;
    phase_ms.push_back(time_steps(spec, st));
    phase_stats.push_back(st);
    phases.push_back(spec.phase);
  }
  auto ms_of = [&](const std::string& phase) {
    return phase_ms[static_cast<size_t>(std::find(phases.begin(), phases.end(), phase) - phases.begin())];
  };

  double eval_s = 0;
  std::int64_t eval_users = 0;
  if (eval) {
    comm->barrier();
    const auto t0 = Clock::now();
    recvae::MetricSums m = trainer.evaluate(false);
    eval_s = std::chrono::duration<double>(Clock::now() - t0).count();
    eval_users = m.users;
  }
  double train_s = 0;
  for (const auto& spec : schedule) train_s += ms_of(spec.phase) * steps_per_pass / 1000.0;
  const double epoch_s = train_s + eval_s;
  const double users_per_s = users * static_cast<double>(schedule.size()) / std::max(1e-9, train_s);
  double rss = peak_rss_gb();
  comm->allreduce_sum_host(&rss, 1);
  // Device memory in use after the steps and the evaluation: the caching allocator keeps what the
  // peak needed, so this approximates the peak (rank 0's device).
  const double device_gb =
      trainer.device().is_cuda() ? recvae::device_memory_in_use(trainer.device().index()) / 1e9 : -1;

  if (root) {
    std::printf(
        "recvae_bench: model %s, %s, %lld train users x %lld items, batch %lld, %d rank(s), device %s, "
        "backend %s, %d thread(s) per rank\n",
        config.model.type.c_str(), tmp_file.empty() ? data.c_str() : (preset + " shape").c_str(),
        static_cast<long long>(users), static_cast<long long>(trainer.num_items()),
        static_cast<long long>(config.train.batch_size), comm->size(), trainer.device().str().c_str(),
        comm->backend().c_str(), torch::get_num_threads());
    for (size_t i = 0; i < phases.size(); ++i)
      std::printf("  %-28s %10.2f ms   (mean of %d)\n", (phases[i] + " step").c_str(), phase_ms[i], steps);
    if (eval)
      std::printf("  %-28s %10.0f users/s (%lld users in %.2f s)\n", "evaluation", eval_users / std::max(eval_s, 1e-9),
                  static_cast<long long>(eval_users), eval_s);
    std::printf("  %-28s %10.2f s    (%lld steps per pass x %zu passes + evaluation)\n", "epoch (estimated)", epoch_s,
                static_cast<long long>(steps_per_pass), schedule.size());
    std::printf("  %-28s %10.0f users/s\n", "training throughput", users_per_s);
    for (size_t i = 0; i < phases.size(); ++i)
      std::printf("  %-28s %10.1f MB\n", ("all-reduced per " + phases[i] + " step").c_str(),
                  phase_stats[i].allreduce_bytes / 1e6);
    // Note [Step breakdown]: ms per step, mean over ranks.
    std::printf("  %-14s %9s %9s %9s %9s %9s %12s %12s\n", "per step (ms)", "compute", "comm", "optimizer", "other",
                "total", "wire MB/rank", "opt state MB");
    for (size_t i = 0; i < phases.size(); ++i) {
      const recvae::StepBreakdown& b = phase_stats[i].time;
      const double n = static_cast<double>(std::max<std::int64_t>(1, phase_stats[i].steps));
      std::printf("  %-14s %9.2f %9.2f %9.2f %9.2f %9.2f %12.1f %12.1f\n", phases[i].c_str(), 1e3 * b.compute / n,
                  1e3 * b.comm / n, 1e3 * b.optimizer / n, 1e3 * b.other / n,
                  1e3 * (b.compute + b.comm + b.optimizer + b.other) / n, b.tally.wire_bytes / n / 1e6,
                  phase_stats[i].optimizer_state_bytes / 1e6);
    }
    std::printf("  %-28s %10.2f GB (sum over ranks)\n", "peak host memory", rss);
    if (device_gb >= 0)
      std::printf("  %-28s %10.2f GB (rank 0's GPU, in use after the run)\n", "device memory", device_gb);
    if (!json_path.empty()) {
      recvae::JsonObject j;
      j.add("data", tmp_file.empty() ? data : preset)
          .add("train_users", users)
          .add("model", config.model.type)
          .add("items", trainer.num_items())
          .add("batch_size", config.train.batch_size)
          .add("world_size", comm->size())
          .add("device", trainer.device().str())
          .add("backend", comm->backend())
          .add("threads_per_rank", static_cast<std::int64_t>(torch::get_num_threads()))
          .add("eval_users", eval_users)
          .add("eval_seconds", eval_s)
          .add("eval_users_per_second", eval ? eval_users / std::max(eval_s, 1e-9) : 0.0)
          .add("epoch_seconds_estimated", epoch_s)
          .add("train_users_per_second", users_per_s)
          .add("peak_host_memory_gb", rss)
          .add("device_memory_gb", device_gb);
      std::string order;  // one epoch's passes, for the scaling model
      for (const auto& spec : schedule) order += (order.empty() ? "" : ",") + spec.phase;
      j.add("optimizer", config.dist.optimizer)
          .add("grad_dtype", config.dist.grad_dtype)
          .add("bucket_mb", config.dist.bucket_mb)
          .add("schedule", order)
          .add("steps_per_pass", steps_per_pass);
      for (size_t i = 0; i < phases.size(); ++i) {
        j.add(phases[i] + "_step_ms", phase_ms[i])
            .add("allreduce_bytes_" + phases[i] + "_step", phase_stats[i].allreduce_bytes);
        recvae::JsonObject b;  // Note [Step breakdown]: seconds and bytes per step
        recvae::add_breakdown(b, phase_stats[i].time, static_cast<double>(phase_stats[i].steps));
        b.add("optimizer_state_bytes", phase_stats[i].optimizer_state_bytes);
        j.add(phases[i] + "_breakdown", b);
      }
      std::ofstream(json_path) << j.str() << "\n";
    }
  }
  if (root && !tmp_file.empty()) std::filesystem::remove(tmp_file);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  recvae::configure_host_allocator();
  int code = 0;
  try {
    code = run(argc, argv);
  } catch (const recvae::InputError& e) {
    std::fprintf(stderr, "recvae_bench: %s\n", e.what());
    code = recvae::kExitInputError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "recvae_bench: %s\n", e.what());
    code = recvae::kExitRuntimeError;
  }
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (code != 0 && initialised && recvae::init_process().size > 1)
    MPI_Abort(MPI_COMM_WORLD, code);  // no rank left waiting
  recvae::finalize_process();
  return code;
}
