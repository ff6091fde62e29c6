/*
 * cxx_threads.cpp - an ordinary C++17 program on weft: std::thread, std::mutex,
 * std::condition_variable and std::async compute a sum (printed as "cxx_threads: sum=330");
 * then, with an argument "throw", a worker thread throws an exception nobody catches, so
 * std::terminate aborts the process (a signal verdict whose call stack runs through
 * std::terminate to the throwing lambda).
 */
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <future>
#include <mutex>
#include <queue>
#include <stdexcept>
#include <thread>
#include <vector>

static long sum_through_a_queue() {
    std::mutex m;
    std::condition_variable cv;
    std::queue<int> q;
    bool done = false;
    long sum = 0;
    std::thread consumer([&] {
        std::unique_lock<std::mutex> l(m);
        for (;;) {
            cv.wait(l, [&] { return !q.empty() || done; });
            while (!q.empty()) {
                sum += q.front();
                q.pop();
            }
            if (done)
                break;
        }
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; p++)
        producers.emplace_back([&, p] {
            for (int i = 1; i <= 10; i++) {
                std::lock_guard<std::mutex> g(m);
                q.push(i * (p + 1));
                cv.notify_one();
            }
        });
    for (auto &t : producers)
        t.join();
    {
        std::lock_guard<std::mutex> g(m);
        done = true;
    }
    cv.notify_one();
    consumer.join();
    return sum;
}

int main(int argc, char **argv) {
    long sum = sum_through_a_queue();
    auto twice = std::async(std::launch::async, [sum] { return 2 * sum; });
    std::printf("cxx_threads: sum=%ld twice=%ld\n", sum, twice.get());
    std::fflush(stdout);
    if (argc > 1 && std::strcmp(argv[1], "throw") == 0) {
        std::thread thrower([] { throw std::runtime_error("nobody catches this"); });
        thrower.join();
    }
    return sum == 330 ? 0 : 1;
}
