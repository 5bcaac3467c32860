// The HDF5 helper layer (h5_io.h).
#include "recvae/data/h5_io.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

namespace recvae::h5 {

void silence_hdf5() {
  static const bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

Handle checked(hid_t id, Handle::Closer closer, const std::string& message) {
  if (id < 0) throw InputError(message);
  return Handle(id, closer);
}

void check(herr_t status, const std::string& message) {
  if (status < 0) throw InputError(message);
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// ---------------------------------------------------------------------------------------------
// Writing helpers

Handle vlen_string_type() {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return Handle(t, H5Tclose);
}

void write_string_attr(hid_t obj, const char* name, const std::string& value, const std::string& where) {
  Handle type = vlen_string_type();
  Handle space = checked(H5Screate(H5S_SCALAR), H5Sclose, where + ": cannot create dataspace");
  Handle attr = checked(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
                        where + ": cannot create attribute " + name);
  const char* p = value.c_str();
  check(H5Awrite(attr.get(), type.get(), &p), where + ": cannot write attribute " + name);
}

// Chunked (1M elements) when non-empty, uncompressed: writing is memory-bandwidth bound.
void write_array(hid_t loc, const char* name, hid_t mem_type, hid_t file_type, const void* data, std::size_t n,
                 const std::string& where) {
  hsize_t dims[1] = {static_cast<hsize_t>(n)};
  Handle space = checked(H5Screate_simple(1, dims, nullptr), H5Sclose, where + ": cannot create dataspace");
  Handle dcpl = checked(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, where + ": cannot create property list");
  if (n > 0) {
    hsize_t chunk[1] = {std::min<hsize_t>(n, hsize_t(1) << 20)};
    check(H5Pset_chunk(dcpl.get(), 1, chunk), where + ": cannot set chunking");
  }
  Handle ds = checked(H5Dcreate2(loc, name, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose,
                      where + ": cannot create dataset " + name);
  if (n > 0) check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where + ": cannot write " + name);
}

void write_nd_array(hid_t loc, const char* name, hid_t mem_type, hid_t file_type, const void* data,
                    const std::vector<std::int64_t>& dims, const std::string& where) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  std::size_t n = 1;
  for (hsize_t x : d) n *= static_cast<std::size_t>(x);
  Handle space = checked(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose,
                         where + ": cannot create dataspace");
  Handle ds = checked(H5Dcreate2(loc, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
                      where + ": cannot create dataset " + name);
  if (n > 0) check(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), where + ": cannot write " + name);
}

void write_strings(hid_t loc, const char* name, const std::vector<std::string>& values, const std::string& where) {
  std::vector<const char*> ptrs(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) ptrs[i] = values[i].c_str();
  Handle type = vlen_string_type();
  hsize_t dims[1] = {static_cast<hsize_t>(values.size())};
  Handle space = checked(H5Screate_simple(1, dims, nullptr), H5Sclose, where + ": cannot create dataspace");
  Handle ds = checked(H5Dcreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose,
                      where + ": cannot create dataset " + name);
  if (!values.empty())
    check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), where + ": cannot write " + name);
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

std::int64_t dataset_length(hid_t ds, const std::string& where) {
  Handle space = checked(H5Dget_space(ds), H5Sclose, where + ": cannot read dataspace");
  if (H5Sget_simple_extent_ndims(space.get()) != 1) throw InputError(where + ": not a 1-D dataset");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return static_cast<std::int64_t>(dims[0]);
}

void read_range(hid_t ds, hid_t mem_type, std::int64_t offset, std::int64_t count, void* out,
                const std::string& where) {
  if (count <= 0) return;
  Handle fspace = checked(H5Dget_space(ds), H5Sclose, where + ": cannot read dataspace");
  hsize_t start[1] = {static_cast<hsize_t>(offset)}, cnt[1] = {static_cast<hsize_t>(count)};
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, cnt, nullptr),
        where + ": cannot select rows");
  Handle mspace = checked(H5Screate_simple(1, cnt, nullptr), H5Sclose, where + ": cannot create dataspace");
  check(H5Dread(ds, mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out),
        where + ": read failed (file truncated or corrupt)");
}

bool has_link(hid_t loc, const std::string& path) {
  // Check every component so that "a/b" with a missing "a" is not an error.
  std::size_t pos = 0;
  while (true) {
    std::size_t slash = path.find('/', pos);
    std::string prefix = path.substr(0, slash);
    if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string read_string_attr(hid_t obj, const char* name, const std::string& where) {
  Handle attr = checked(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, where + ": missing attribute " + name);
  Handle ftype = checked(H5Aget_type(attr.get()), H5Tclose, where + ": cannot read attribute " + name);
  if (H5Tget_class(ftype.get()) != H5T_STRING) throw InputError(where + ": attribute " + name + " is not a string");
  if (H5Tis_variable_str(ftype.get()) > 0) {
    Handle mtype = vlen_string_type();
    char* p = nullptr;
    check(H5Aread(attr.get(), mtype.get(), &p), where + ": cannot read attribute " + name);
    std::string s = p ? p : "";
    Handle space = checked(H5Aget_space(attr.get()), H5Sclose, where + ": cannot read attribute " + name);
    H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, &p);
    return s;
  }
  std::size_t size = H5Tget_size(ftype.get());
  std::string s(size, '\0');
  Handle mtype = checked(H5Tcopy(H5T_C_S1), H5Tclose, where + ": type");
  H5Tset_size(mtype.get(), size);
  check(H5Aread(attr.get(), mtype.get(), s.data()), where + ": cannot read attribute " + name);
  s.resize(std::strlen(s.c_str()));
  return s;
}

std::vector<std::string> read_strings(hid_t loc, const char* name, const std::string& where) {
  Handle ds = checked(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose, where + ": missing dataset " + name);
  const std::int64_t n = dataset_length(ds.get(), where + ": " + name);
  std::vector<std::string> out;
  if (n == 0) return out;
  {
    // A corrupt length must not size the pointer array: every entry takes file space.
    hsize_t file_size = 0;
    Handle fid(H5Iget_file_id(loc), H5Fclose);
    if (fid.valid()) H5Fget_filesize(fid.get(), &file_size);
    if (static_cast<hsize_t>(n) > file_size)
      throw InputError(where + ": " + name + " claims " + std::to_string(n) + " entries, more than the file's " +
                       std::to_string(file_size) + " bytes (file corrupt)");
  }
  Handle mtype = vlen_string_type();
  std::vector<char*> ptrs(static_cast<std::size_t>(n), nullptr);
  Handle space = checked(H5Dget_space(ds.get()), H5Sclose, where + ": cannot read " + name);
  check(H5Dread(ds.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()),
        where + ": cannot read " + name + " (file truncated or corrupt)");
  out.reserve(ptrs.size());
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  H5Dvlen_reclaim(mtype.get(), space.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

}  // namespace recvae::h5
