/*
 * norace_cxx_threads.cpp - a correct program for `weft races`: std::thread workers each
 * fill their own element of a std::vector<int> (adjacent ints) and their own std::string,
 * then main reads them after join. Prints "norace_cxx_threads: ok" and exits 0.
 */
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

int main() {
    const int n = 4;
    std::vector<int> counts(n);
    std::vector<std::string> names(n);
    std::vector<std::thread> workers;
    for (int i = 0; i < n; i++)
        workers.emplace_back([&, i] {
            for (int k = 0; k < 10; k++)
                counts[i] += i + 1;
            names[i] = "worker number " + std::to_string(i) + " finished its share";
        });
    for (auto &t : workers)
        t.join();
    bool ok = true;
    for (int i = 0; i < n; i++)
        ok = ok && counts[i] == 10 * (i + 1) && names[i].size() > 20;
    std::printf("norace_cxx_threads: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
