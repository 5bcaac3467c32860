#pragma once
// model.h5: a run's best model in a plain HDF5 file that h5py/NumPy or any HDF5 reader can
// score with (layout and per-model formulas: data/README.md, "Model export").
#include <torch/torch.h>

#include <string>
#include <vector>

namespace recvae {

class Model;
class Communicator;

/// Format version written to model.h5's root attribute `format_version`.
constexpr int kModelExportVersion = 1;

/// Writes every parameter and buffer of `model` (under /weights, named as the module names
/// them, e.g. "decoder.weight"), the item ids (/item_ids, column order) and the run's config
/// (root attribute `config`, YAML) to `path` through a temporary file and a rename.
void write_model_export(const std::string& path, Model& model, const std::string& config_yaml,
                        const std::vector<std::string>& item_ids);

/// write_model_export for a model whose weights are split by item columns over the ranks (a
/// collective; Note [Distributed EASE]): rank 0 writes everything write_model_export writes,
/// then each rank in turn writes its columns of the split matrix (ColumnShardedScores) into
/// /weights/<its name> (items x items, chunked by column blocks). `path` appears only complete.
void write_model_export_sharded(const std::string& path, Model& model, const std::string& config_yaml,
                                const std::vector<std::string>& item_ids, Communicator& comm);

/// The weights `name` of a model.h5 (/weights/<name>, in its stored float type), or an undefined
/// tensor when the file has none of that name (InputError when the file is not a model.h5).
torch::Tensor read_model_export_weights(const std::string& path, const std::string& name);

/// The item ids of a model.h5 (InputError when the file is not one).
std::vector<std::string> read_model_export_item_ids(const std::string& path);

}  // namespace recvae
