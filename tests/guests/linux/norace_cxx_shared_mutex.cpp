/*
 * norace_cxx_shared_mutex.cpp - a correct program for `weft races`: a std::map guarded by
 * a std::shared_mutex, written under unique_lock and read under shared_lock by several
 * std::threads. Prints "norace_cxx_shared_mutex: ok" and exits 0.
 */
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

int main() {
    std::shared_mutex m;
    std::map<int, long> table;
    std::vector<long> seen(3);
    std::vector<std::thread> ts;
    for (int w = 0; w < 2; w++)
        ts.emplace_back([&, w] {
            for (int i = 0; i < 5; i++) {
                std::unique_lock<std::shared_mutex> l(m);
                table[i] += w + 1;
            }
        });
    for (int r = 0; r < 3; r++)
        ts.emplace_back([&, r] {
            for (int i = 0; i < 5; i++) {
                std::shared_lock<std::shared_mutex> l(m);
                for (auto &kv : table)
                    seen[r] += kv.second;
            }
        });
    for (auto &t : ts)
        t.join();
    bool ok = table.size() == 5 && table[0] == 3;
    std::printf("norace_cxx_shared_mutex: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
