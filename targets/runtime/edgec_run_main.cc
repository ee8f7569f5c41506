// edgec-runner: run an edgec model library on tensors from files, using only the C API.
//
//   edgec-runner model.so [--metadata metadata.json] --input x.npy [--input name=y.bin ...]
//                [--output-dir out/] [--repeat N] [--threads N] [--quiet]
//
// Inputs are given in the model's input order, or by name (`name=file`). A `.npy` file carries
// its own shape and dtype (checked against the metadata; without metadata it declares them); any
// other file is raw little-endian row-major data whose size must match the metadata's shape x
// dtype. Outputs are written as `<output-dir>/<name>.npy`. Prints one line per output
// (name, dtype, shape, min/max/mean of float outputs), a timing line and a threads line: the
// count edgec_num_threads() gives (--threads N sets it) and the threads the process had after the
// runs (/proc/self/task: the main thread, the pool's workers, any the runtime keeps).
#include <dirent.h>
#include <sys/stat.h>
#include <cerrno>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgec_runtime.h"

namespace {

struct Npy {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;
};

const char* kDescr[][2] = {{"<f4", "float32"}, {"<f8", "float64"}, {"<f2", "float16"},
                           {"|i1", "int8"},    {"|u1", "uint8"},   {"<i2", "int16"},
                           {"<u2", "uint16"},  {"<i4", "int32"},   {"<u4", "uint32"},
                           {"<i8", "int64"},   {"<u8", "uint64"},  {"|b1", "bool"}};

[[noreturn]] void Die(const std::string& msg) {
  std::fprintf(stderr, "edgec-runner: %s\n", msg.c_str());
  std::exit(2);
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) Die("cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool EndsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string DictValue(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) Die("npy header lacks '" + key + "'");
  size_t colon = header.find(':', k);
  size_t start = header.find_first_not_of(" ", colon + 1);
  if (header[start] == '(') return header.substr(start, header.find(')', start) - start + 1);
  size_t end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

Npy ReadNpy(const std::string& path) {
  std::string buf = ReadAll(path);
  if (buf.size() < 10 || buf.compare(0, 6, "\x93NUMPY") != 0) Die("'" + path + "' is not .npy");
  int major = static_cast<unsigned char>(buf[6]);
  size_t hlen, off;
  if (major == 1) {
    hlen = static_cast<unsigned char>(buf[8]) | (static_cast<unsigned char>(buf[9]) << 8);
    off = 10;
  } else {
    hlen = 0;
    for (int i = 0; i < 4; ++i) hlen |= static_cast<size_t>(static_cast<unsigned char>(buf[8 + i])) << (8 * i);
    off = 12;
  }
  std::string header = buf.substr(off, hlen);
  Npy out;
  std::string descr = DictValue(header, "descr");
  descr = descr.substr(1, descr.size() - 2);
  for (auto& d : kDescr)
    if (descr == d[0]) out.dtype = d[1];
  if (out.dtype.empty()) Die("'" + path + "': unsupported npy dtype " + descr);
  if (DictValue(header, "fortran_order").find("True") != std::string::npos)
    Die("'" + path + "': Fortran-order arrays are not supported");
  std::string shape = DictValue(header, "shape");
  for (size_t i = 1; i < shape.size();) {
    size_t j = shape.find_first_of(",)", i);
    std::string tok = shape.substr(i, j - i);
    if (tok.find_first_of("0123456789") != std::string::npos) out.shape.push_back(std::stoll(tok));
    i = j + 1;
  }
  out.data = buf.substr(off + hlen);
  return out;
}

void WriteNpy(const std::string& path, const char* dtype, const int64_t* shape, int ndim,
              const std::vector<char>& data) {
  const char* descr = nullptr;
  for (auto& d : kDescr)
    if (std::strcmp(dtype, d[1]) == 0) descr = d[0];
  if (!descr) Die(std::string("cannot write dtype ") + dtype + " as .npy");
  std::string shp = "(";
  for (int i = 0; i < ndim; ++i) shp += std::to_string(shape[i]) + (ndim == 1 ? ",)" : i + 1 < ndim ? ", " : ")");
  if (ndim == 0) shp += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shp + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) Die("cannot write '" + path + "'");
  f.write("\x93NUMPY\x01\x00", 8);
  unsigned char len[2] = {static_cast<unsigned char>(header.size() & 0xff),
                          static_cast<unsigned char>(header.size() >> 8)};
  f.write(reinterpret_cast<const char*>(len), 2);
  f << header;
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string ShapeStr(const int64_t* s, int n) {
  std::string r = "[";
  for (int i = 0; i < n; ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

std::string SafeName(std::string s) {
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return s.empty() ? "output" : s;
}

double Ms(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

int ProcessThreads() {  // entries of /proc/self/task; -1 where there is no /proc
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

void Check(edgec_model* m, int rc, const char* what) {
  if (rc != EDGEC_OK) Die(std::string(what) + ": " + edgec_last_error(m));
}

}  // namespace

int main(int argc, char** argv) {
  std::string lib, meta, out_dir = ".";
  std::vector<std::string> inputs;
  int repeat = 1, threads = -1;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--input" || a == "-i") inputs.push_back(next());
    else if (a == "--metadata") meta = next();
    else if (a == "--output-dir" || a == "-o") out_dir = next();
    else if (a == "--repeat") repeat = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--quiet") quiet = true;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: edgec-runner model.so [--metadata m.json] --input FILE|NAME=FILE ... "
                  "[--output-dir DIR] [--repeat N] [--threads N] [--quiet]\n");
      return 0;
    } else if (lib.empty() && a[0] != '-') lib = a;
    else Die("unexpected argument '" + a + "'");
  }
  if (lib.empty()) Die("no model library given (try --help)");
  if (repeat < 1) Die("--repeat must be >= 1");
  if (threads == 0 || threads < -1) Die("--threads must be >= 1");
  if (threads > 0) Check(nullptr, edgec_set_num_threads(threads), "--threads");
  // the output directory is created (one level, like `mkdir DIR`) before any work
  if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST)
    Die("cannot create --output-dir '" + out_dir + "': " + std::strerror(errno));

  char err[1024];
  auto t0 = std::chrono::steady_clock::now();
  edgec_model* m = meta.empty() ? edgec_load(lib.c_str(), err, sizeof err)
                                : edgec_load_with_metadata(lib.c_str(), meta.c_str(), err, sizeof err);
  if (!m) Die(err);
  auto t1 = std::chrono::steady_clock::now();
  int nin = edgec_num_inputs(m);
  if (static_cast<int>(inputs.size()) != nin)
    Die("model has " + std::to_string(nin) + " inputs, got " + std::to_string(inputs.size()) + " --input");
  for (int k = 0; k < nin; ++k) {
    std::string spec = inputs[k], path = spec;
    int idx = k;
    size_t eq = spec.find('=');
    if (eq != std::string::npos) {
      idx = edgec_input_index(m, spec.substr(0, eq).c_str());
      if (idx < 0) Die("model has no input named '" + spec.substr(0, eq) + "'");
      path = spec.substr(eq + 1);
    }
    std::string data;
    if (EndsWith(path, ".npy")) {
      Npy npy = ReadNpy(path);
      int ndim = edgec_input_ndim(m, idx);
      if (ndim < 0) {
        Check(m, edgec_set_input_shape(m, idx, npy.shape.data(), static_cast<int>(npy.shape.size()),
                                       npy.dtype.c_str()), "set_input_shape");
      } else {
        std::string want = ShapeStr(edgec_input_shape(m, idx), ndim);
        std::string got = ShapeStr(npy.shape.data(), static_cast<int>(npy.shape.size()));
        if (want != got || npy.dtype != edgec_input_dtype(m, idx))
          Die("input '" + std::string(edgec_input_name(m, idx)) + "' expects " +
              edgec_input_dtype(m, idx) + want + ", '" + path + "' is " + npy.dtype + got);
      }
      data = std::move(npy.data);
    } else {
      data = ReadAll(path);
    }
    Check(m, edgec_set_input(m, idx, data.data(), data.size()), "set_input");
  }
  auto t2 = std::chrono::steady_clock::now();
  Check(m, edgec_run(m), "run");
  auto t3 = std::chrono::steady_clock::now();
  double best = Ms(t2, t3), total = 0;
  for (int r = 1; r < repeat; ++r) {
    auto a = std::chrono::steady_clock::now();
    Check(m, edgec_run(m), "run");
    double ms = Ms(a, std::chrono::steady_clock::now());
    total += ms;
    best = ms < best ? ms : best;
  }
  for (int o = 0; o < edgec_num_outputs(m); ++o) {
    std::vector<char> buf(edgec_output_bytes(m, o));
    Check(m, edgec_get_output(m, o, buf.data(), buf.size()), "get_output");
    const char* dt = edgec_output_dtype(m, o);
    int nd = edgec_output_ndim(m, o);
    std::string path = out_dir + "/" + SafeName(edgec_output_name(m, o)) + ".npy";
    WriteNpy(path, dt, edgec_output_shape(m, o), nd, buf);
    if (quiet) continue;
    std::printf("output %d '%s' %s%s", o, edgec_output_name(m, o), dt,
                ShapeStr(edgec_output_shape(m, o), nd).c_str());
    if (std::strcmp(dt, "float32") == 0 && !buf.empty()) {
      const float* f = reinterpret_cast<const float*>(buf.data());
      size_t n = buf.size() / 4;
      double lo = f[0], hi = f[0], sum = 0;
      for (size_t i = 0; i < n; ++i) {
        lo = std::fmin(lo, f[i]);
        hi = std::fmax(hi, f[i]);
        sum += f[i];
      }
      std::printf(" min=%.6g max=%.6g mean=%.6g", lo, hi, sum / n);
    }
    std::printf(" -> %s\n", path.c_str());
  }
  std::printf("timing: load %.2f ms, first run %.3f ms, best %.3f ms, mean of next %d: %.3f ms\n",
              Ms(t0, t1), Ms(t2, t3), best, repeat - 1, repeat > 1 ? total / (repeat - 1) : Ms(t2, t3));
  std::printf("threads: %d, process has %d\n", edgec_num_threads(), ProcessThreads());
  edgec_free(m);
  return 0;
}
