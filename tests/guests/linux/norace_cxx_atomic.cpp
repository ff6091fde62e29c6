/*
 * norace_cxx_atomic.cpp - a correct program for `weft races`: std::atomic with
 * release/acquire, which g++ compiles to plain MOVs on x86. A producer fills a heap
 * vector and publishes it through a std::atomic<bool> flag (stored with release, never
 * touched by a locked instruction); a consumer spins with acquire loads, then reads the
 * vector. A second flag lives inside a heap object, so only the code of std::atomic's
 * member functions says it is atomic. Prints "norace_cxx_atomic: sum=..." and exits 0.
 */
#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

static std::atomic<bool> ready{false};
static std::vector<int> *data;

struct Mailbox {
    long payload[4];
    std::atomic<int> full{0};
};

int main() {
    auto box = std::make_unique<Mailbox>();
    long sum = 0;
    std::thread consumer([&] {
        while (!ready.load(std::memory_order_acquire))
            std::this_thread::yield();
        for (int v : *data)
            sum += v;
        while (box->full.load(std::memory_order_acquire) == 0)
            std::this_thread::yield();
        for (long p : box->payload)
            sum += p;
    });
    std::thread producer([&] {
        data = new std::vector<int>{1, 2, 3, 4, 5};
        ready.store(true, std::memory_order_release);
        for (int i = 0; i < 4; i++)
            box->payload[i] = 10 * (i + 1);
        box->full.store(1, std::memory_order_release);
    });
    producer.join();
    consumer.join();
    std::printf("norace_cxx_atomic: sum=%ld\n", sum);
    delete data;
    return sum == 115 ? 0 : 1;
}
