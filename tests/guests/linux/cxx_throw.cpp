// cxx_throw.cpp - a thread that throws an exception nobody catches: std::terminate, then
// abort (SIGABRT), with "terminate called after throwing an instance of
// 'std::runtime_error'" and the exception's what() on standard error. The throw is in
// parse_config, called from the thread's function.
#include <stdexcept>
#include <thread>

__attribute__((noinline)) static int parse_config(int n) {
    if (n > 2)
        throw std::runtime_error("config line 3 is malformed");
    return n;
}

int main() {
    std::thread t([] {
        for (int i = 0; i < 5; i++)
            parse_config(i);
    });
    t.join();
    return 0;
}
