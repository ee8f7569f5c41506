// edgec_pool.cc -- the parallel launcher of edgec's kernels: a spinning thread pool.
//
// TVM's kernels run a parallel loop by calling the function pointer `__TVMBackendParallelLaunch`
// of their library. TVM's runtime points it at its own pool, whose idle threads wait by calling
// sched_yield in a loop: a launch then waits for a worker to come back from the kernel (about
// 2.3 us per launch of an empty 2-task loop on a 2-core KVM guest, 0.7 us with this pool), and a
// small model launches ~65 loops per run. Loading a library, edgec points that pointer here
// instead (edgec_pool_install).
//
// The pool: `threads` - 1 workers plus the launching thread. A launch of n tasks (0: one per
// thread) runs task ids t, t + threads, ... on thread t: each task computes the part of the loop
// its id names, so results do not depend on the thread count. Tasks get no barrier (sync_handle
// is null; see edgec_pool_install). Idle workers spin on a generation counter with a pause
// instruction for `spin_us` microseconds, then sleep on a condition variable until the next
// launch. A task that fails on a worker (its error is that thread's) fails the launch with a
// RuntimeError raised on the launching thread. Launches are serialized; a launch from a second thread while one runs
// (two models run at once from two threads) runs its tasks serially on its own thread.
//
// Plain C ABI, no TVM headers: the lambda and environment types are TVM's (c_backend_api.h).
// Build: g++ -std=c++17 -O2 -fPIC -shared edgec_pool.cc -o libedgec_pool.so -pthread
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EDGEC_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define EDGEC_CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define EDGEC_CPU_RELAX() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

namespace {

// One step of a spin: a pause, and every 4096th step a sched_yield, so that a spinning thread
// lets another runnable thread of its CPU (another process's, on a busy machine) run now and then.
inline void Relax(unsigned step) {
  if ((step & 4095) == 0) std::this_thread::yield();
  else EDGEC_CPU_RELAX();
}

typedef struct {
  void* sync_handle;
  int32_t num_task;
} ParallelEnv;
typedef int (*ParallelLambda)(int task_id, ParallelEnv* penv, void* cdata);
typedef void (*RaiseError)(const char* kind, const char* message);  // TVMFFIErrorSetRaisedFromCStr
std::atomic<RaiseError> g_raise{nullptr};

class Pool {
 public:
  int threads() const { return threads_; }

  // Stops the workers and starts n - 1 new ones. Returns 0, or -1 when a thread could not be
  // started (the pool is then serial).
  int Resize(int n, long spin_us) {
    std::lock_guard<std::mutex> launch(launch_mu_);
    StopWorkers();
    spin_ns_ = spin_us < 0 ? 0 : spin_us * 1000;
    try {
      unsigned now = generation_.load();  // a worker's first launch is the next one, whenever it starts
      for (int i = 1; i < n; ++i) workers_.push_back(new std::thread(&Pool::Work, this, i, now));
    } catch (const std::exception&) {
      StopWorkers();
      return -1;
    }
    threads_ = n < 1 ? 1 : n;
    return 0;
  }

  int Launch(ParallelLambda f, void* cdata, int num_task) {
    std::unique_lock<std::mutex> launch(launch_mu_, std::try_to_lock);
    int n = num_task > 0 ? num_task : threads_;
    if (!launch.owns_lock() || threads_ == 1 || n == 1) return RunSerial(f, cdata, n);
    f_ = f, cdata_ = cdata, num_task_ = n;
    failed_.store(0, std::memory_order_relaxed);
    pending_.store(threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);  // a worker between its check and its wait sees the new generation
      wake_.notify_all();
    }
    int rc = RunTasks(0);
    for (unsigned i = 1; pending_.load(std::memory_order_acquire) != 0; ++i) Relax(i);
    if (rc == 0 && failed_.load(std::memory_order_relaxed)) {
      if (RaiseError raise = g_raise.load()) raise("RuntimeError", "a parallel task of a kernel failed on a worker thread");
      return -1;
    }
    return rc != 0 ? -1 : 0;
  }

  // In a child after fork() only the forking thread exists: forget the workers (their
  // std::thread objects are leaked, not joined) and start serial.
  void ForgetAfterFork() {
    new (&launch_mu_) std::mutex();
    new (&mu_) std::mutex();
    new (&wake_) std::condition_variable();
    workers_.clear();
    threads_ = 1;
    sleepers_.store(0);
    stop_.store(false);
  }

 private:
  int RunSerial(ParallelLambda f, void* cdata, int n) {
    ParallelEnv env{nullptr, n};  // no barrier: tasks run one after another
    int rc = 0;
    for (int t = 0; t < n; ++t) rc |= f(t, &env, cdata);
    return rc != 0 ? -1 : 0;
  }

  int RunTasks(int first) {
    ParallelEnv env{nullptr, num_task_};
    int rc = 0;
    for (int t = first; t < num_task_; t += threads_) rc |= f_(t, &env, cdata_);
    return rc;
  }

  void StopWorkers() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_seq_cst);
    }
    wake_.notify_all();
    for (std::thread* w : workers_) {
      w->join();
      delete w;
    }
    workers_.clear();
    stop_.store(false);
    threads_ = 1;
  }

  // Waits until the generation differs from `seen` (or the pool stops): spinning for spin_ns_,
  // then asleep.
  bool Wait(unsigned seen) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + std::chrono::nanoseconds(spin_ns_);
    for (unsigned i = 1;; ++i) {
      if (generation_.load(std::memory_order_acquire) != seen) return true;
      if (stop_.load(std::memory_order_relaxed)) return false;
      if ((i & 255) == 0 && Clock::now() >= deadline) break;
      Relax(i);
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    wake_.wait(lk, [&] {
      return stop_.load(std::memory_order_seq_cst) || generation_.load(std::memory_order_seq_cst) != seen;
    });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return !stop_.load(std::memory_order_relaxed);
  }

  void Work(int id, unsigned seen) {
    while (Wait(seen)) {
      seen = generation_.load(std::memory_order_acquire);
      if (RunTasks(id) != 0) failed_.store(1, std::memory_order_relaxed);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::mutex launch_mu_, mu_;
  std::condition_variable wake_;
  std::vector<std::thread*> workers_;
  int threads_ = 1;
  long spin_ns_ = 0;
  ParallelLambda f_ = nullptr;
  void* cdata_ = nullptr;
  int num_task_ = 0;
  alignas(64) std::atomic<unsigned> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<int> failed_{0}, sleepers_{0};
  std::atomic<bool> stop_{false};
};

Pool* ThePool() {
  static Pool* pool = [] {  // never destroyed: workers may still spin while the process exits
    Pool* p = new Pool();
    pthread_atfork(nullptr, nullptr, [] { ThePool()->ForgetAfterFork(); });
    return p;
  }();
  return pool;
}

int Launch(ParallelLambda f, void* cdata, int num_task) { return ThePool()->Launch(f, cdata, num_task); }

}  // namespace

extern "C" {

// Use n threads (the caller plus n - 1 workers); idle workers spin for spin_us microseconds
// before they sleep. Returns 0, or -1 when the workers could not be started.
__attribute__((visibility("default"))) int edgec_pool_set_threads(int n, long spin_us) {
  return ThePool()->Resize(n, spin_us);
}

__attribute__((visibility("default"))) int edgec_pool_threads() { return ThePool()->threads(); }

// Points the parallel-launch hook of a loaded kernel library (a dlopen handle) at this pool.
// Returns 1, 0 when the library has no parallel loop, or -1 when it synchronizes inside its
// parallel loops (a `__TVMBackendParallelBarrier` hook, which TVM 0.27's CPU code generator does
// not emit): such a library keeps TVM's pool.
__attribute__((visibility("default"))) int edgec_pool_install(void* handle);

}  // extern "C"

#include <dlfcn.h>

int edgec_pool_install(void* handle) {
  if (dlsym(handle, "__TVMBackendParallelBarrier")) return -1;
  void* p = dlsym(handle, "__TVMBackendParallelLaunch");
  if (!p) return 0;
  if (void* raise = dlsym(handle, "TVMFFIErrorSetRaisedFromCStr")) g_raise.store(reinterpret_cast<RaiseError>(raise));
  *static_cast<int (**)(ParallelLambda, void*, int)>(p) = &Launch;
  return 1;
}
