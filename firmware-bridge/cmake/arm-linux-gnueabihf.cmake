# Cross-compiling firmware-bridge for 32-bit ARM Linux (Debian armhf), run under qemu-user.
#   cmake -S firmware-bridge -B build-armhf -DCMAKE_TOOLCHAIN_FILE=firmware-bridge/cmake/arm-linux-gnueabihf.cmake
#   cmake --build build-armhf && ctest --test-dir build-armhf
# Needs Debian gcc-arm-linux-gnueabihf, qemu-user and the armhf development packages
# (dpkg --add-architecture armhf; libmbedtls-dev:armhf, libmosquitto-dev:armhf, libcmocka-dev:armhf).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)

# Debian's multiarch layout: armhf headers and libraries live beside the host's, under
# arm-linux-gnueabihf triplet directories; the cross compiler searches those by itself, and
# find_library/find_path must look there and never pick up a host (amd64) library.
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf /usr/lib/arm-linux-gnueabihf)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig)

# ctest (and add_test commands) run the ARM binaries through user-mode qemu; -L points the
# dynamic loader at the armhf C library.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm -L /usr/arm-linux-gnueabihf)
