#include <iostream>
int main() { std::cout << "kd\n"; return 0; }
