# Bare-metal Cortex-M (Debian gcc-arm-none-eabi + libnewlib-arm-none-eabi): for the size table
# (scripts/size-table.sh) — the core compiled as a static library, no crypto backend, no
# examples, no tests (there is no OS to run them on).
#   cmake -S firmware-bridge -B build-m4 -DCMAKE_TOOLCHAIN_FILE=firmware-bridge/cmake/arm-none-eabi.cmake \
#         -DFB_CPU=cortex-m4 -DCMAKE_BUILD_TYPE=MinSizeRel
# FB_CPU: cortex-m0plus (ARMv6-M, Thumb-1 only) or cortex-m4 (ARMv7E-M, soft float ABI).
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
set(CMAKE_SIZE arm-none-eabi-size)
# No operating system to link a test program against: try_compile builds a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

if(NOT FB_CPU)
  set(FB_CPU cortex-m4)
endif()
set(FB_CPU "${FB_CPU}" CACHE STRING "Cortex-M core: cortex-m0plus or cortex-m4")
set(CMAKE_C_FLAGS_INIT "-mcpu=${FB_CPU} -mthumb -ffunction-sections -fdata-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
