// edgec_runtime.cc -- implementation of edgec_runtime.h over the tvm-ffi C++ API and the Relax VM
// in libtvm_runtime.so. Build: g++ -std=c++17 -fPIC -shared -I<tvm_ffi/include> edgec_runtime.cc
//   -Wl,--no-as-needed -ltvm_runtime -ltvm_ffi -Wl,-rpath,'$ORIGIN'
#include "edgec_runtime.h"
#include "edgec_query.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace ffi = tvm::ffi;

namespace {

struct AlignedCPUAlloc {
  void AllocData(DLTensor* t) {
    size_t n = ffi::GetDataSize(*t);
    size_t rounded = ((n ? n : 1) + 63) / 64 * 64;
    t->data = std::aligned_alloc(64, rounded);
    if (t->data == nullptr) throw std::bad_alloc();
  }
  void FreeData(DLTensor* t) { std::free(t->data); }
};

// weights.bin mapped copy-on-write (the kernels may take the tensors as writable DLTensors; the
// file never changes); unmapped when the last tensor viewing it is gone.
struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base) munmap(base, size);
  }
};

struct MappedAlloc {  // a tensor viewing [offset, offset + nbytes) of a Mapping; frees nothing
  std::shared_ptr<Mapping> map;
  size_t offset;
  void AllocData(DLTensor* t) { t->data = static_cast<char*>(map->base) + offset; }
  void FreeData(DLTensor*) {}
};

struct WeightEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  size_t offset = 0, nbytes = 0;
};

using edgec::Fail;
using edgec::Info;
using edgec::NumBytes;
using edgec::ShapeMismatch;
using edgec::TensorInfo;

// The calling thread's TVM pool (TVM keeps one per calling thread): the count last applied, and
// the threads it was created with.
thread_local int t_pool_threads = 0;
thread_local int t_pool_capacity = 0;

// Use n threads of this thread's TVM pool. TVM creates a pool once, with MaxConcurrency()
// (TVM_NUM_THREADS) threads, and `runtime.config_threadpool` then uses up to that many. So the
// pool is created with max(n, cores) threads: any count up to the cores can be chosen at any time,
// more only before the first run (else an error says so).
void ConfigPool(int n) {
  auto config = ffi::Function::GetGlobal("runtime.config_threadpool");
  auto used = ffi::Function::GetGlobal("runtime.NumThreads");
  if (!config || !used) throw std::runtime_error("the TVM runtime lacks runtime.config_threadpool");
  if (!t_pool_capacity) {
    t_pool_capacity = std::max(n, edgec::CpuCount());
    setenv("TVM_NUM_THREADS", std::to_string(t_pool_capacity).c_str(), 1);
  }
  (*config)(0, n);
  int got = (*used)().cast<int>();
  t_pool_threads = n;  // asked once, not at every run
  if (got != n)
    throw std::runtime_error("TVM's thread pool of this thread has " + std::to_string(t_pool_capacity) +
                             " threads and cannot grow to " + std::to_string(n) +
                             ": set more threads than cores before the first edgec_run");
}

}  // namespace

struct edgec_model : edgec::ModelIO {
  ffi::Optional<ffi::Module> lib;
  ffi::Optional<ffi::Module> vm;
  ffi::Optional<ffi::Function> main;
  std::vector<ffi::Optional<ffi::Tensor>> in_tensors;
  std::vector<bool> in_shared;  // in_tensors[i] is a result tensor (edgec_set_input_from_output)
  std::vector<ffi::Tensor> results;
  std::map<std::string, std::pair<int64_t, int64_t>> dim_bounds;  // --dim NAME=LO..HI (metadata)
  std::string weights_file;                 // metadata "weights": weights.bin beside the library
  std::vector<WeightEntry> weight_entries;
  std::vector<ffi::Tensor> weights;         // passed after the inputs on every run
};

const edgec::ModelIO* edgec::AsIO(const edgec_model* m) { return m; }

int edgec::ApplyThreads(int n) {
  try {
    ConfigPool(n);
  } catch (const std::exception& e) {
    return Fail(nullptr, EDGEC_ERR_RUN, std::string("edgec_set_num_threads: ") + e.what());
  }
  return EDGEC_OK;
}

namespace {

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream f(path, std::ios::binary);
  *ok = static_cast<bool>(f);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<TensorInfo> ParseInfos(const ffi::json::Object& root, const char* key) {
  std::vector<TensorInfo> out;
  auto it = root.find(ffi::String(key));
  if (it == root.end()) throw std::runtime_error(std::string("metadata has no \"") + key + "\"");
  for (const ffi::Any& item : (*it).second.cast<ffi::json::Array>()) {
    auto obj = item.cast<ffi::json::Object>();
    TensorInfo t;
    t.name = std::string(obj.at(ffi::String("name")).cast<ffi::String>());
    auto dt = obj.find(ffi::String("dtype"));
    if (dt != obj.end()) t.dtype = std::string((*dt).second.cast<ffi::String>());
    ffi::StringToDLDataType(t.dtype);  // validate
    if (!edgec::DTypeBits(t.dtype)) throw std::runtime_error("metadata: unsupported dtype '" + t.dtype + "'");
    bool symbolic = false;  // a dim named in the metadata ("batch"): the caller sets the shape
    for (const ffi::Any& d : obj.at(ffi::String("shape")).cast<ffi::json::Array>()) {
      if (auto name = d.as<ffi::String>()) {
        symbolic = true;
        t.declared_shape.push_back(-1);
        t.dim_names.push_back(std::string(*name));
        continue;
      }
      int64_t v = d.cast<int64_t>();
      if (v < 0) throw std::runtime_error("metadata shape of '" + t.name + "' is negative");
      t.shape.push_back(v);
      t.declared_shape.push_back(v);
      t.dim_names.emplace_back();
    }
    t.declared = true;
    if (t.shape.size() > EDGEC_MAX_NDIM) throw std::runtime_error("too many dimensions");
    if (symbolic) t.shape.clear();
    t.known = !symbolic;
    out.push_back(std::move(t));
  }
  return out;
}

void LoadMetadata(edgec_model* m, const std::string& path) {
  bool ok = false;
  std::string text = ReadFile(path, &ok);
  if (!ok) throw std::runtime_error("cannot read metadata file '" + path + "'");
  ffi::String perr;
  ffi::json::Value v = ffi::json::Parse(ffi::String(text), &perr);
  if (!perr.empty()) throw std::runtime_error("metadata '" + path + "': " + std::string(perr));
  auto root = v.cast<ffi::json::Object>();
  m->inputs = ParseInfos(root, "inputs");
  m->outputs = ParseInfos(root, "outputs");
  auto bounds = root.find(ffi::String("dim_bounds"));  // memory was planned for these sizes
  if (bounds != root.end()) {
    for (const auto& kv : (*bounds).second.cast<ffi::json::Object>()) {
      auto lohi = kv.second.cast<ffi::json::Array>();
      if (lohi.size() != 2) throw std::runtime_error("metadata dim_bounds: [lo, hi] expected");
      m->dim_bounds[std::string(kv.first.cast<ffi::String>())] = {lohi[0].cast<int64_t>(),
                                                                    lohi[1].cast<int64_t>()};
    }
  }
  auto weights = root.find(ffi::String("weights"));  // big initializers in a separate file
  if (weights != root.end()) {
    auto index = (*weights).second.cast<ffi::json::Object>();
    auto file = index.find(ffi::String("file"));
    m->weights_file = file != index.end() ? std::string((*file).second.cast<ffi::String>())
                                          : std::string("weights.bin");
    for (const ffi::Any& item : index.at(ffi::String("tensors")).cast<ffi::json::Array>()) {
      auto obj = item.cast<ffi::json::Object>();
      WeightEntry e;
      e.name = std::string(obj.at(ffi::String("name")).cast<ffi::String>());
      e.dtype = std::string(obj.at(ffi::String("dtype")).cast<ffi::String>());
      for (const ffi::Any& d : obj.at(ffi::String("shape")).cast<ffi::json::Array>())
        e.shape.push_back(d.cast<int64_t>());
      e.offset = static_cast<size_t>(obj.at(ffi::String("offset")).cast<int64_t>());
      e.nbytes = static_cast<size_t>(obj.at(ffi::String("nbytes")).cast<int64_t>());
      m->weight_entries.push_back(std::move(e));
    }
  }
}

// Map `dir/<weights_file>` and make one tensor per entry, viewing the mapping (no copy).
void OpenWeights(edgec_model* m, const std::string& dir) {
  if (m->weight_entries.empty()) return;
  std::string path = dir + "/" + m->weights_file;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0)
    throw std::runtime_error(path + ": weights file missing (metadata.json lists " +
                             std::to_string(m->weight_entries.size()) + " weights)");
  struct stat st;
  auto map = std::make_shared<Mapping>();
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    map->size = static_cast<size_t>(st.st_size);
    map->base = mmap(nullptr, map->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (map->base == MAP_FAILED) map->base = nullptr;
  }
  close(fd);
  if (!map->base) throw std::runtime_error(path + ": cannot map the weights file");
  for (const WeightEntry& e : m->weight_entries) {
    if (e.offset + e.nbytes > map->size || e.offset % 64)
      throw std::runtime_error(path + ": weight '" + e.name + "' [" + std::to_string(e.offset) +
                               ", " + std::to_string(e.offset + e.nbytes) + ") exceeds the file (" +
                               std::to_string(map->size) + " bytes) or is not 64-byte aligned");
    TensorInfo info;
    info.name = e.name;
    info.dtype = e.dtype;
    info.shape = e.shape;
    info.known = true;
    if (NumBytes(info) != e.nbytes)
      throw std::runtime_error(path + ": weight '" + e.name + "' has " + std::to_string(e.nbytes) +
                               " bytes, its shape and dtype need " + std::to_string(NumBytes(info)));
    m->weights.push_back(ffi::Tensor::FromNDAlloc(
        MappedAlloc{map, e.offset}, ffi::ShapeView(e.shape.data(), e.shape.size()),
        ffi::StringToDLDataType(e.dtype), DLDevice{kDLCPU, 0}));
  }
}

void InputsFromVM(edgec_model* m) {
  auto arity = m->vm.value()->GetFunction("get_function_arity");
  auto pname = m->vm.value()->GetFunction("get_function_param_name");
  if (!arity || !pname) throw std::runtime_error("VM lacks arity queries; pass metadata");
  int64_t n = (*arity)(ffi::String("main")).cast<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TensorInfo t;
    t.name = std::string((*pname)(ffi::String("main"), i).cast<ffi::String>());
    m->inputs.push_back(t);
  }
}

std::string DirName(const std::string& path) {
  size_t pos = path.find_last_of('/');
  return pos == std::string::npos ? std::string(".") : path.substr(0, pos);
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// dlopen searches the library path for a name without '/': "model.so" means ./model.so here.
std::string LoadablePath(const std::string& path) {
  return path.find('/') == std::string::npos ? "./" + path : path;
}

void FlattenResult(const ffi::Any& rv, std::vector<ffi::Tensor>* out) {
  if (auto t = rv.try_cast<ffi::Tensor>()) {
    out->push_back(*t);
  } else if (auto arr = rv.try_cast<ffi::Array<ffi::Any>>()) {
    for (const ffi::Any& a : *arr) FlattenResult(a, out);
  } else {
    throw std::runtime_error("model returned a value that is neither a tensor nor a tuple: " +
                             rv.GetTypeKey());
  }
}

}  // namespace

extern "C" {

edgec_model* edgec_load_with_metadata(const char* lib_path, const char* metadata_path, char* err,
                                      size_t errlen) {
  if (!lib_path) {
    Fail(nullptr, EDGEC_ERR_ARG, "edgec_load: lib_path is NULL");
    edgec::CopyErr(err, errlen, edgec::LastError());
    return nullptr;
  }
  auto* m = new edgec_model();
  try {
    if (!FileExists(lib_path)) throw std::runtime_error(std::string("no such file: ") + lib_path);
    m->lib = ffi::Module::LoadFromFile(LoadablePath(lib_path));
    auto load = m->lib.value()->GetFunction("vm_load_executable");
    if (!load) throw std::runtime_error("not a Relax VM library (no vm_load_executable)");
    m->vm = (*load)().cast<ffi::Module>();
    // one CPU device (kDLCPU = 1, id 0), pooled allocator (2), as tvm.runtime.vm does
    ffi::Module vm = m->vm.value();
    (*vm->GetFunction("vm_initialization"))(static_cast<int>(kDLCPU), 0, 2);
    auto main = vm->GetFunction("main");
    if (!main) throw std::runtime_error("library has no function 'main'");
    m->main = *main;
    if (metadata_path) LoadMetadata(m, metadata_path);
    else InputsFromVM(m);
    OpenWeights(m, DirName(lib_path));
    m->in_tensors.resize(m->inputs.size());
    m->in_shared.assign(m->inputs.size(), false);
  } catch (const ffi::Error& e) {
    Fail(nullptr, EDGEC_ERR_LOAD, std::string("edgec_load(") + lib_path + "): " + e.kind() +
                                      ": " + e.message());
    edgec::CopyErr(err, errlen, edgec::LastError());
    delete m;
    return nullptr;
  } catch (const std::exception& e) {
    Fail(nullptr, EDGEC_ERR_LOAD, std::string("edgec_load(") + lib_path + "): " + e.what());
    edgec::CopyErr(err, errlen, edgec::LastError());
    delete m;
    return nullptr;
  }
  return m;
}

edgec_model* edgec_load(const char* lib_path, char* err, size_t errlen) {
  std::string meta = lib_path ? DirName(lib_path) + "/metadata.json" : std::string();
  return edgec_load_with_metadata(lib_path, lib_path && FileExists(meta) ? meta.c_str() : nullptr,
                                  err, errlen);
}

void edgec_free(edgec_model* m) { delete m; }


int edgec_set_input_shape(edgec_model* m, int idx, const int64_t* shape, int ndim,
                          const char* dtype) {
  if (!m || (!shape && ndim > 0) || ndim < 0 || ndim > EDGEC_MAX_NDIM)
    return Fail(m, EDGEC_ERR_ARG, "edgec_set_input_shape: bad arguments");
  if (!Info(m, true, idx)) return EDGEC_ERR_INDEX;
  TensorInfo& t = m->inputs[idx];
  if (dtype) {
    try {
      ffi::StringToDLDataType(dtype);
      if (!edgec::DTypeBits(dtype)) throw std::runtime_error(dtype);
    } catch (const std::exception&) {
      return Fail(m, EDGEC_ERR_ARG, std::string("unknown dtype '") + dtype + "'");
    }
  }
  std::vector<int64_t> s(shape, shape + ndim);
  std::string dt = dtype ? dtype : t.dtype;
  std::string why = ShapeMismatch(t, s, dt);
  if (!why.empty())
    return Fail(m, EDGEC_ERR_SHAPE, "edgec_set_input_shape: input '" + t.name + "': " + why);
  if (t.known && s == t.shape && dt == t.dtype && !m->in_shared[idx]) return EDGEC_OK;
  t.dtype = dt;
  t.shape = std::move(s);
  t.known = true;
  m->in_tensors[idx] = ffi::Optional<ffi::Tensor>();
  m->in_shared[idx] = false;
  return EDGEC_OK;
}

int edgec_set_input_from_output(edgec_model* m, int in_idx, int out_idx) {
  if (!m) return Fail(m, EDGEC_ERR_ARG, "edgec_set_input_from_output: NULL model");
  if (!Info(m, true, in_idx) || !Info(m, false, out_idx)) return EDGEC_ERR_INDEX;
  if (static_cast<size_t>(out_idx) >= m->results.size())
    return Fail(m, EDGEC_ERR_STATE, "edgec_set_input_from_output: call edgec_run first");
  TensorInfo& t = m->inputs[in_idx];
  const TensorInfo& o = m->outputs[out_idx];
  std::string why = ShapeMismatch(t, o.shape, o.dtype);
  if (why.empty() && !t.declared && t.known && o.dtype != t.dtype)
    why = "it is " + t.dtype + ", got " + o.dtype;
  if (!why.empty())
    return Fail(m, EDGEC_ERR_SHAPE, "edgec_set_input_from_output: output '" + o.name +
                                        "' does not fit input '" + t.name + "': " + why);
  t.shape = o.shape;
  t.dtype = o.dtype;
  t.known = true;
  m->in_tensors[in_idx] = m->results[out_idx];
  m->in_shared[in_idx] = true;
  return EDGEC_OK;
}

int edgec_set_input(edgec_model* m, int idx, const void* data, size_t bytes) {
  if (!m || (!data && bytes)) return Fail(m, EDGEC_ERR_ARG, "edgec_set_input: NULL argument");
  const TensorInfo* t = Info(m, true, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (!t->known)
    return Fail(m, EDGEC_ERR_STATE, "input '" + t->name + "' has no shape yet (" +
                                        (t->declared ? "symbolic dims" : "no metadata") +
                                        "): call edgec_set_input_shape");
  if (bytes != NumBytes(*t))
    return Fail(m, EDGEC_ERR_SIZE, "input '" + t->name + "' needs " +
                                       std::to_string(NumBytes(*t)) + " bytes, got " +
                                       std::to_string(bytes));
  try {
    if (!m->in_tensors[idx].has_value() || m->in_shared[idx]) {
      m->in_shared[idx] = false;
      m->in_tensors[idx] = ffi::Tensor::FromNDAlloc(
          AlignedCPUAlloc(), ffi::ShapeView(t->shape.data(), t->shape.size()),
          ffi::StringToDLDataType(t->dtype), DLDevice{kDLCPU, 0});
    }
    if (bytes) std::memcpy(m->in_tensors[idx].value().data_ptr(), data, bytes);
  } catch (const std::exception& e) {
    return Fail(m, EDGEC_ERR_RUN, std::string("edgec_set_input: ") + e.what());
  }
  return EDGEC_OK;
}

int edgec_run(edgec_model* m) {
  if (!m) return Fail(m, EDGEC_ERR_ARG, "edgec_run: NULL model");
  std::vector<ffi::AnyView> args;
  for (size_t i = 0; i < m->inputs.size(); ++i) {
    if (!m->in_tensors[i].has_value())
      return Fail(m, EDGEC_ERR_STATE, "input '" + m->inputs[i].name + "' was not set");
    args.emplace_back(m->in_tensors[i].value());
  }
  for (const ffi::Tensor& w : m->weights) args.emplace_back(w);
  std::map<std::string, size_t> first;  // symbolic dim name -> input that set it first
  for (size_t i = 0; i < m->inputs.size(); ++i) {
    const TensorInfo& t = m->inputs[i];
    for (size_t a = 0; t.declared && a < t.dim_names.size() && a < t.shape.size(); ++a) {
      if (t.dim_names[a].empty()) continue;
      auto b = m->dim_bounds.find(t.dim_names[a]);
      if (b != m->dim_bounds.end() && (t.shape[a] < b->second.first || t.shape[a] > b->second.second))
        return Fail(m, EDGEC_ERR_SHAPE, "edgec_run: input '" + t.name + "' has " + t.dim_names[a] +
                                            " = " + std::to_string(t.shape[a]) +
                                            "; the model was compiled for " + t.dim_names[a] + " in " +
                                            std::to_string(b->second.first) + ".." +
                                            std::to_string(b->second.second) + " (--dim)");
      auto it = first.emplace(t.dim_names[a], i).first;
      const TensorInfo& f = m->inputs[it->second];
      size_t fa = 0;
      while (f.dim_names[fa] != t.dim_names[a]) ++fa;
      if (f.shape[fa] != t.shape[a])
        return Fail(m, EDGEC_ERR_SHAPE, "edgec_run: input '" + t.name + "' has " + t.dim_names[a] +
                                            " = " + std::to_string(t.shape[a]) + ", input '" +
                                            f.name + "' has " + t.dim_names[a] + " = " +
                                            std::to_string(f.shape[fa]));
    }
  }
  try {
    if (t_pool_threads != edgec::NumThreads()) ConfigPool(edgec::NumThreads());
    ffi::Any rv;
    m->main.value().CallPacked(args.data(), static_cast<int32_t>(args.size()), &rv);
    std::vector<ffi::Tensor> results;
    FlattenResult(rv, &results);
    if (!m->outputs.empty() && results.size() != m->outputs.size())
      throw std::runtime_error("model returned " + std::to_string(results.size()) +
                               " outputs, metadata lists " + std::to_string(m->outputs.size()));
    m->outputs.resize(results.size());
    for (size_t i = 0; i < results.size(); ++i) {
      TensorInfo& o = m->outputs[i];
      if (o.name.empty()) o.name = "output" + std::to_string(i);
      auto shape = results[i].shape();
      o.shape.assign(shape.begin(), shape.end());
      o.dtype = std::string(ffi::DLDataTypeToString(results[i].dtype()));
      o.known = true;
      if (!results[i].IsContiguous()) throw std::runtime_error("non-contiguous output");
    }
    m->results = std::move(results);
  } catch (const ffi::Error& e) {
    return Fail(m, EDGEC_ERR_RUN, "edgec_run: " + e.kind() + ": " + e.message());
  } catch (const std::exception& e) {
    return Fail(m, EDGEC_ERR_RUN, std::string("edgec_run: ") + e.what());
  }
  return EDGEC_OK;
}

int edgec_get_output(const edgec_model* m, int idx, void* dst, size_t bytes) {
  if (!m || (!dst && bytes)) return Fail(m, EDGEC_ERR_ARG, "edgec_get_output: NULL argument");
  const TensorInfo* t = Info(m, false, idx);
  if (!t) return EDGEC_ERR_INDEX;
  if (static_cast<size_t>(idx) >= m->results.size())
    return Fail(m, EDGEC_ERR_STATE, "edgec_get_output: call edgec_run first");
  size_t need = NumBytes(*t);
  if (bytes < need)
    return Fail(m, EDGEC_ERR_SIZE, "output '" + t->name + "' needs " + std::to_string(need) +
                                       " bytes, buffer has " + std::to_string(bytes));
  const ffi::Tensor& r = m->results[idx];
  if (need) std::memcpy(dst, static_cast<const char*>(r.data_ptr()) + r.byte_offset(), need);
  return EDGEC_OK;
}

const void* edgec_output_data(const edgec_model* m, int idx) {
  if (!Info(m, false, idx)) return nullptr;
  if (static_cast<size_t>(idx) >= m->results.size()) {
    Fail(m, EDGEC_ERR_STATE, "edgec_output_data: call edgec_run first");
    return nullptr;
  }
  const ffi::Tensor& r = m->results[idx];
  return static_cast<const char*>(r.data_ptr()) + r.byte_offset();
}

}  // extern "C"
