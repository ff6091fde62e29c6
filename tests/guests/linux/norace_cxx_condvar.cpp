/*
 * norace_cxx_condvar.cpp - a correct program for `weft races`: a work queue of
 * std::unique_ptr jobs between two producers and two consumers (std::mutex,
 * std::condition_variable, notify_one and notify_all), std::call_once for a shared
 * table, and std::cout under a mutex. Prints "norace_cxx_condvar: total=..." and exits 0.
 */
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

static std::once_flag once;
static std::vector<int> weights;

int main() {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::unique_ptr<int>> q;
    int producers_left = 2;
    long total = 0;
    std::vector<std::thread> ts;
    for (int p = 0; p < 2; p++)
        ts.emplace_back([&, p] {
            std::call_once(once, [] { weights = {1, 2, 3}; });
            for (int i = 0; i < 6; i++) {
                auto job = std::make_unique<int>(p * 100 + i * weights[i % 3]);
                std::lock_guard<std::mutex> g(m);
                q.push_back(std::move(job));
                cv.notify_one();
            }
            std::lock_guard<std::mutex> g(m);
            producers_left--;
            cv.notify_all();
        });
    for (int c = 0; c < 2; c++)
        ts.emplace_back([&] {
            long mine = 0;
            for (;;) {
                std::unique_lock<std::mutex> l(m);
                cv.wait(l, [&] { return !q.empty() || producers_left == 0; });
                if (q.empty())
                    break;
                auto job = std::move(q.front());
                q.pop_front();
                l.unlock();
                mine += *job;
            }
            std::lock_guard<std::mutex> g(m);
            total += mine;
            std::cout << "consumer done\n";
        });
    for (auto &t : ts)
        t.join();
    std::printf("norace_cxx_condvar: total=%ld\n", total);
    return 0;
}
