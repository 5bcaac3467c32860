#pragma once
// model.h5: a run's best model in a plain HDF5 file that h5py/NumPy or any HDF5 reader can
// score with (layout and per-model formulas: data/README.md, "Model export").
#include <string>
#include <vector>

namespace recvae {

class Model;

/// Format version written to model.h5's root attribute `format_version`.
constexpr int kModelExportVersion = 1;

/// Writes every parameter and buffer of `model` (under /weights, named as the module names
/// them, e.g. "decoder.weight"), the item ids (/item_ids, column order) and the run's config
/// (root attribute `config`, YAML) to `path` through a temporary file and a rename.
void write_model_export(const std::string& path, Model& model, const std::string& config_yaml,
                        const std::vector<std::string>& item_ids);

/// The item ids of a model.h5 (InputError when the file is not one).
std::vector<std::string> read_model_export_item_ids(const std::string& path);

}  // namespace recvae
