#include "recvae/train/data_fingerprint.h"

#include <cstdio>

#include "recvae/data/h5_dataset.h"

namespace recvae {

std::uint64_t fnv1a64(const std::string& text) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

std::string data_fingerprint(const SplitFile& file) {
  std::string fp = "items=" + std::to_string(file.num_items());
  for (const char* sp :
       {split::kTrain, split::kValidationFoldIn, split::kValidationHoldout, split::kTestFoldIn, split::kTestHoldout}) {
    const std::int64_t rows = file.num_rows(sp);
    fp +=
        std::string(";") + sp + "=" + std::to_string(rows) + "/" + std::to_string(file.read_indptr(sp, rows, rows)[0]);
  }
  std::string ids;
  for (const auto& id : file.read_item_ids()) ids += id + "\n";
  char hex[20];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(ids)));
  return fp + ";item_ids=" + hex;
}

}  // namespace recvae
