#include "recvae/export/model_export.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "recvae/data/h5_io.h"
#include "recvae/dist/comm.h"
#include "recvae/models/column_shards.h"
#include "recvae/models/model.h"
#include "recvae/util/error.h"

namespace recvae {

using namespace h5;  // NOLINT: this file is a format written through the helper layer

namespace {

constexpr const char* kFormatName = "recvae-model";

// Files keep the tensor's own type where a reader would want it (float64 EASE, int64 SLIM
// coordinates); anything else is stored as float32.
void write_tensor(hid_t group, const std::string& name, const torch::Tensor& t, const std::string& where) {
  torch::Tensor host = t.detach().to(torch::kCPU).contiguous();
  hid_t mem = H5T_NATIVE_FLOAT, file = H5T_IEEE_F32LE;
  switch (host.scalar_type()) {
    case torch::kFloat64:
      mem = H5T_NATIVE_DOUBLE;
      file = H5T_IEEE_F64LE;
      break;
    case torch::kInt64:
      mem = H5T_NATIVE_INT64;
      file = H5T_STD_I64LE;
      break;
    case torch::kInt32:
      mem = H5T_NATIVE_INT32;
      file = H5T_STD_I32LE;
      break;
    case torch::kFloat32:
      break;
    default:
      host = host.to(torch::kFloat32);
      break;
  }
  write_nd_array(group, name.c_str(), mem, file, host.data_ptr(), host.sizes().vec(), where);
}

}  // namespace

void write_model_export(const std::string& path, Model& model, const std::string& config_yaml,
                        const std::vector<std::string>& item_ids) {
  silence_hdf5();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    {
      Handle f = checked(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                         tmp + ": cannot create file");
      write_string_attr(f.get(), "format", kFormatName, path);
      write_scalar_attr<std::int64_t>(f.get(), "format_version", H5T_NATIVE_INT64, H5T_STD_I64LE, kModelExportVersion,
                                      path);
      write_string_attr(f.get(), "model_type", model.type(), path);
      write_scalar_attr<std::int64_t>(f.get(), "items", H5T_NATIVE_INT64, H5T_STD_I64LE,
                                      static_cast<std::int64_t>(item_ids.size()), path);
      write_string_attr(f.get(), "config", config_yaml, path);
      write_strings(f.get(), "item_ids", item_ids, path);
      Handle weights = checked(H5Gcreate2(f.get(), "weights", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                               path + ": cannot create group weights");
      torch::NoGradGuard guard;
      for (const auto& p : model.module().named_parameters()) write_tensor(weights.get(), p.key(), p.value(), path);
      for (const auto& b : model.module().named_buffers()) write_tensor(weights.get(), b.key(), b.value(), path);
    }
    std::filesystem::rename(tmp, path);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void write_model_export_sharded(const std::string& path, Model& model, const std::string& config_yaml,
                                const std::vector<std::string>& item_ids, Communicator& comm) {
  ColumnShardedScores* shards = model.column_shards();
  if (shards == nullptr) throw std::logic_error("write_model_export_sharded: the model is not split by columns");
  const torch::Tensor& local = shards->local_weights();
  const std::vector<std::int64_t>& cols = shards->local_items();
  const std::string name = shards->weights_name(), partial = path + ".partial";
  const auto n = static_cast<hsize_t>(item_ids.size());
  const bool wide = local.scalar_type() == torch::kFloat64;
  const hid_t mem = wide ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
  constexpr hsize_t kChunkColumns = 64, kChunkRows = 1024;
  if (comm.rank() == 0) {
    write_model_export(partial, model, config_yaml, item_ids);  // the module's (empty) copy of the matrix
    Handle f = checked(H5Fopen(partial.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, partial + ": cannot open");
    Handle weights = checked(H5Gopen2(f.get(), "weights", H5P_DEFAULT), H5Gclose, partial + ": no group weights");
    if (has_link(weights.get(), name))
      check(H5Ldelete(weights.get(), name.c_str(), H5P_DEFAULT), partial + ": " + name);
    const hsize_t dims[2] = {n, n};
    Handle space = checked(H5Screate_simple(2, dims, nullptr), H5Sclose, partial + ": dataspace");
    Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, partial + ": property list");
    // Chunks of whole column blocks: each rank's writes fill whole chunks.
    const hsize_t chunk[2] = {std::max<hsize_t>(1, std::min(n, kChunkRows)),
                              std::max<hsize_t>(1, std::min(n, kChunkColumns))};
    check(H5Pset_chunk(dcpl.get(), 2, chunk), partial + ": chunking");
    checked(H5Dcreate2(weights.get(), name.c_str(), wide ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                       dcpl.get(), H5P_DEFAULT),
            H5Dclose, partial + ": cannot create " + name);
  }
  // One rank at a time (plain HDF5 has one writer per file); a rank failing here ends the job
  // (run_guarded_job), so no rank waits forever at the barriers.
  for (int writer = 0; writer < comm.size(); ++writer) {
    comm.barrier();
    if (writer != comm.rank() || cols.empty()) continue;
    Handle f = checked(H5Fopen(partial.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, partial + ": cannot open");
    Handle ds = checked(H5Dopen2(f.get(), ("weights/" + name).c_str(), H5P_DEFAULT), H5Dclose, partial + ": " + name);
    Handle file_space = checked(H5Dget_space(ds.get()), H5Sclose, partial + ": dataspace");
    // Runs of consecutive columns, transposed into [items, run] so that one hyperslab takes each.
    for (std::size_t c0 = 0; c0 < cols.size();) {
      std::size_t c1 = c0 + 1;
      while (c1 < cols.size() && cols[c1] == cols[c1 - 1] + 1 && c1 - c0 < kChunkColumns) ++c1;
      const auto width = static_cast<std::int64_t>(c1 - c0);
      torch::Tensor block = local.narrow(0, static_cast<std::int64_t>(c0), width).t().contiguous();
      const hsize_t start[2] = {0, static_cast<hsize_t>(cols[c0])}, count[2] = {n, static_cast<hsize_t>(width)};
      check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
            partial + ": hyperslab");
      Handle mem_space = checked(H5Screate_simple(2, count, nullptr), H5Sclose, partial + ": dataspace");
      check(H5Dwrite(ds.get(), mem, mem_space.get(), file_space.get(), H5P_DEFAULT, block.data_ptr()),
            partial + ": cannot write " + name);
      c0 = c1;
    }
  }
  comm.barrier();
  if (comm.rank() == 0) std::filesystem::rename(partial, path);
}

torch::Tensor read_model_export_weights(const std::string& path, const std::string& name) {
  silence_hdf5();
  Handle f =
      checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + ": cannot open (not an HDF5 file?)");
  if (!has_attr(f.get(), "format") || read_string_attr(f.get(), "format", path) != kFormatName)
    throw InputError(path + ": not a recvae model export (root attribute format != " + kFormatName + ")");
  const std::string where = "weights/" + name;
  if (!has_link(f.get(), "weights") || !has_link(f.get(), where)) return torch::Tensor();
  Handle ds = checked(H5Dopen2(f.get(), where.c_str(), H5P_DEFAULT), H5Dclose, path + ": cannot open " + where);
  Handle space = checked(H5Dget_space(ds.get()), H5Sclose, path + ": " + where + ": no dataspace");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) throw InputError(path + ": " + where + ": unreadable shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  Handle type = checked(H5Dget_type(ds.get()), H5Tclose, path + ": " + where + ": no type");
  if (H5Tget_class(type.get()) != H5T_FLOAT) throw InputError(path + ": " + where + " is not a float array");
  const bool wide = H5Tget_size(type.get()) == 8;
  torch::Tensor t =
      torch::empty(std::vector<std::int64_t>(dims.begin(), dims.end()), wide ? torch::kFloat64 : torch::kFloat32);
  check(H5Dread(ds.get(), wide ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data_ptr()),
        path + ": cannot read " + where);
  return t;
}

std::vector<std::string> read_model_export_item_ids(const std::string& path) {
  silence_hdf5();
  Handle f =
      checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + ": cannot open (not an HDF5 file?)");
  if (!has_attr(f.get(), "format") || read_string_attr(f.get(), "format", path) != kFormatName)
    throw InputError(path + ": not a recvae model export (root attribute format != " + kFormatName + ")");
  return read_strings(f.get(), "item_ids", path);
}

}  // namespace recvae
