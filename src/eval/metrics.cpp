#include "recvae/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace recvae {
namespace {

struct Candidate {
  float score;
  std::int32_t item;
};

// "a ranks before b": higher score, then lower item id; NaN ranks after every number.
bool ranks_before(const Candidate& a, const Candidate& b) {
  const bool an = std::isnan(a.score), bn = std::isnan(b.score);
  if (an != bn) return bn;
  if (!an && a.score != b.score) return a.score > b.score;
  return a.item < b.item;
}

bool contains(const std::int32_t* sorted, std::int64_t n, std::int32_t item) {
  return std::binary_search(sorted, sorted + n, item);
}

double discount(int rank0) { return 1.0 / std::log2(rank0 + 2.0); }

}  // namespace

MetricSums& MetricSums::operator+=(const MetricSums& o) {
  ndcg100 += o.ndcg100;
  recall20 += o.recall20;
  recall50 += o.recall50;
  users += o.users;
  return *this;
}

void MetricSums::to_array(double (&out)[4]) const {
  out[0] = ndcg100;
  out[1] = recall20;
  out[2] = recall50;
  out[3] = static_cast<double>(users);
}

MetricSums MetricSums::from_array(const double* v) {
  MetricSums m;
  m.ndcg100 = v[0];
  m.recall20 = v[1];
  m.recall50 = v[2];
  m.users = static_cast<std::int64_t>(v[3] + 0.5);
  return m;
}

std::vector<std::int32_t> top_k(const float* scores, std::int64_t items, const std::int32_t* excluded,
                                std::int64_t num_excluded, int k) {
  // A heap of the k best so far, worst on top: one comparison per item once it is full.
  std::vector<Candidate> heap;
  heap.reserve(static_cast<size_t>(k));
  std::int64_t next_excluded = 0;
  for (std::int64_t i = 0; i < items; ++i) {
    if (next_excluded < num_excluded && excluded[next_excluded] == i) {
      ++next_excluded;
      continue;
    }
    Candidate c{scores[i], static_cast<std::int32_t>(i)};
    if (static_cast<int>(heap.size()) < k) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    } else if (k > 0 && ranks_before(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), ranks_before);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), ranks_before);
    }
  }
  std::sort(heap.begin(), heap.end(), ranks_before);
  std::vector<std::int32_t> out(heap.size());
  for (size_t i = 0; i < heap.size(); ++i) out[i] = heap[i].item;
  return out;
}

double ndcg_at_k(const std::vector<std::int32_t>& ranked, const std::int32_t* holdout, std::int64_t n, int k) {
  if (n == 0) return 0.0;
  double dcg = 0, idcg = 0;
  const int depth = std::min<int>(k, static_cast<int>(ranked.size()));
  for (int r = 0; r < depth; ++r)
    if (contains(holdout, n, ranked[r])) dcg += discount(r);
  for (int r = 0; r < std::min<std::int64_t>(k, n); ++r) idcg += discount(r);
  return dcg / idcg;
}

double recall_at_k(const std::vector<std::int32_t>& ranked, const std::int32_t* holdout, std::int64_t n, int k) {
  if (n == 0) return 0.0;
  std::int64_t hits = 0;
  const int depth = std::min<int>(k, static_cast<int>(ranked.size()));
  for (int r = 0; r < depth; ++r) hits += contains(holdout, n, ranked[r]);
  return static_cast<double>(hits) / static_cast<double>(std::min<std::int64_t>(k, n));
}

MetricSums score_rows(const float* scores, std::int64_t row_stride, std::int64_t rows, std::int64_t items,
                      const CsrMatrix& fold_in, const CsrMatrix& holdout, std::int64_t first_row, int threads) {
  // Per-user values are computed in parallel and summed in row order, so the sums do not depend
  // on the number of threads.
  std::vector<double> values(static_cast<size_t>(rows) * 3, 0.0);
  std::vector<char> counted(static_cast<size_t>(rows), 0);
  auto work = [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      const std::int64_t u = first_row + r;
      const std::int64_t hb = holdout.indptr[u], hn = holdout.indptr[u + 1] - hb;
      if (hn == 0) continue;
      const std::int64_t fb = fold_in.indptr[u], fn = fold_in.indptr[u + 1] - fb;
      auto ranked = top_k(scores + r * row_stride, items, fold_in.indices.data() + fb, fn, 100);
      const std::int32_t* h = holdout.indices.data() + hb;
      values[r * 3 + 0] = ndcg_at_k(ranked, h, hn, 100);
      values[r * 3 + 1] = recall_at_k(ranked, h, hn, 20);
      values[r * 3 + 2] = recall_at_k(ranked, h, hn, 50);
      counted[r] = 1;
    }
  };
  const std::int64_t workers = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, rows / 64));
  if (workers <= 1) {
    work(0, rows);
  } else {
    std::vector<std::thread> pool;
    const std::int64_t chunk = (rows + workers - 1) / workers;
    for (std::int64_t t = 0; t < workers; ++t) pool.emplace_back(work, t * chunk, std::min(rows, (t + 1) * chunk));
    for (auto& th : pool) th.join();
  }
  MetricSums sums;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (!counted[r]) continue;
    sums.ndcg100 += values[r * 3 + 0];
    sums.recall20 += values[r * 3 + 1];
    sums.recall50 += values[r * 3 + 2];
    ++sums.users;
  }
  return sums;
}

}  // namespace recvae
