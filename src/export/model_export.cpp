#include "recvae/export/model_export.h"

#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "recvae/data/h5_io.h"
#include "recvae/models/model.h"

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

std::vector<std::string> read_model_export_item_ids(const std::string& path) {
  silence_hdf5();
  Handle f =
      checked(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path + ": cannot open (not an HDF5 file?)");
  if (!has_attr(f.get(), "format") || read_string_attr(f.get(), "format", path) != kFormatName)
    throw InputError(path + ": not a recvae model export (root attribute format != " + kFormatName + ")");
  return read_strings(f.get(), "item_ids", path);
}

}  // namespace recvae
