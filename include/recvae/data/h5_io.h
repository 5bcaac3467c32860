#pragma once
// Small RAII and helper layer over the HDF5 C API shared by the split files, the model export
// and the recommendation files. Every failure becomes an InputError carrying `where`.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "recvae/util/error.h"

namespace recvae::h5 {

/// Turns off HDF5's own error printing (errors are reported as InputError instead).
void silence_hdf5();

/// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = -1;
    }
    return *this;
  }
  ~Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

/// Wraps `id` in a Handle, throwing InputError(message) when it is negative (a failed call).
Handle checked(hid_t id, Handle::Closer closer, const std::string& message);
/// Throws InputError(message) when `status` is negative.
void check(herr_t status, const std::string& message);
/// Whether `path` exists.
bool file_exists(const std::string& path);
/// The variable-length UTF-8 string type.
Handle vlen_string_type();
/// Writes a variable-length string attribute.
void write_string_attr(hid_t obj, const char* name, const std::string& value, const std::string& where);
/// Writes a 1-D dataset of `n` elements (chunked when non-empty).
void write_array(hid_t loc, const char* name, hid_t mem_type, hid_t file_type, const void* data, std::size_t n,
                 const std::string& where);
/// Writes an N-D dataset of shape `dims` (row-major `data`; contiguous layout).
void write_nd_array(hid_t loc, const char* name, hid_t mem_type, hid_t file_type, const void* data,
                    const std::vector<std::int64_t>& dims, const std::string& where);
/// Writes a 1-D dataset of variable-length strings.
void write_strings(hid_t loc, const char* name, const std::vector<std::string>& values, const std::string& where);
/// Length of a 1-D dataset (InputError when it is not 1-D).
std::int64_t dataset_length(hid_t ds, const std::string& where);
/// Reads elements [offset, offset + count) of a 1-D dataset.
void read_range(hid_t ds, hid_t mem_type, std::int64_t offset, std::int64_t count, void* out, const std::string& where);
/// Whether every component of the link path `path` exists under `loc`.
bool has_link(hid_t loc, const std::string& path);
/// Whether `obj` has the attribute `name`.
bool has_attr(hid_t obj, const char* name);
/// A string attribute (fixed or variable length).
std::string read_string_attr(hid_t obj, const char* name, const std::string& where);
/// A 1-D dataset of strings.
std::vector<std::string> read_strings(hid_t loc, const char* name, const std::string& where);

/// Writes a scalar attribute of type T.
template <typename T>
void write_scalar_attr(hid_t obj, const char* name, hid_t mem_type, hid_t file_type, T value,
                       const std::string& where) {
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, where + ": cannot create dataspace");
  Handle attr = checked(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                        where + ": cannot create attribute " + name);
  check(H5Awrite(attr.get(), mem_type, &value), where + ": cannot write attribute " + name);
}

/// Reads a scalar attribute of type T.
template <typename T>
T read_scalar_attr(hid_t obj, const char* name, hid_t mem_type, const std::string& where) {
  Handle attr = checked(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where + ": missing attribute " + name);
  Handle space = checked(H5Aget_space(attr.get()), H5Sclose, where + ": cannot read attribute " + name);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw InputError(where + ": attribute " + name + " is not a scalar");
  T value{};
  check(H5Aread(attr.get(), mem_type, &value), where + ": cannot read attribute " + name);
  return value;
}

}  // namespace recvae::h5
