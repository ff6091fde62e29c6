/*
 * norace_cxx_future.cpp - a correct program for `weft races`: std::async, std::promise
 * and std::packaged_task hand results (a vector, a string) from thread to thread.
 * Prints "norace_cxx_future: ok" and exits 0.
 */
#include <cstdio>
#include <future>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

int main() {
    auto a = std::async(std::launch::async, [] {
        std::vector<int> v(32);
        std::iota(v.begin(), v.end(), 1);
        return v;
    });
    std::promise<std::string> p;
    auto f = p.get_future();
    std::thread t([&p] { p.set_value(std::string("a string made in another thread")); });
    std::packaged_task<long(long)> task([](long x) { return x * x; });
    auto r = task.get_future();
    std::thread t2(std::move(task), 12);
    auto v = a.get();
    auto s = f.get();
    long sq = r.get();
    t.join();
    t2.join();
    bool ok = std::accumulate(v.begin(), v.end(), 0) == 528 && s.size() > 10 && sq == 144;
    std::printf("norace_cxx_future: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
