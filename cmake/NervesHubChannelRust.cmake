# nhc_rust_library(): makes libnerves_hub_channel.{so,a} in ${CMAKE_BINARY_DIR}/lib
# from cargo (or from NHC_PREBUILT_DIR) and defines, in the caller's scope:
#   NHC_SHARED_LINK   the .so to link (a symlink to the versioned file)
#   NHC_SHARED_FILES  the versioned .so and its two symlinks, for install()
#   NHC_STATIC_LIB    the .a
#   NHC_DEVSERVER     the nhc-devserver binary (tests only)
# and the target nhc_rust_artifacts that produces them.
#
# cargo is run on every build: it knows best what changed, and a no-op run
# costs well under a second. Tests add nhc-devserver to the same cargo
# invocation so that both share one build of the core (two invocations
# would build it twice, with different tokio features).

function(nhc_rust_library)
  set(lib_dir "${CMAKE_BINARY_DIR}/lib")
  file(MAKE_DIRECTORY "${lib_dir}")
  set(soname "libnerves_hub_channel.so.${PROJECT_VERSION_MAJOR}")
  set(real_so "${lib_dir}/libnerves_hub_channel.so.${PROJECT_VERSION}")
  set(static_lib "${lib_dir}/libnerves_hub_channel.a")

  if(CMAKE_BUILD_TYPE STREQUAL "Debug")
    set(profile_dir debug)
    set(profile_flag "")
  elseif(CMAKE_BUILD_TYPE STREQUAL "MinSizeRel")
    # Cargo's `dist` profile: optimised for size, for shipping on devices.
    set(profile_dir dist)
    set(profile_flag --profile dist)
  else()
    set(profile_dir release)
    set(profile_flag --release)
  endif()

  if(NHC_PREBUILT_DIR)
    set(artifact_dir "${NHC_PREBUILT_DIR}")
  else()
    if(DEFINED ENV{CARGO_TARGET_DIR})
      set(target_dir "$ENV{CARGO_TARGET_DIR}")
    else()
      set(target_dir "${CMAKE_SOURCE_DIR}/target")
    endif()
    set(artifact_dir "${target_dir}/${profile_dir}")
    set(target_flag "")
    set(cross_env "")
    if(NHC_RUST_TARGET)
      set(artifact_dir "${target_dir}/${NHC_RUST_TARGET}/${profile_dir}")
      set(target_flag --target ${NHC_RUST_TARGET})
      # Link and compile C (ring) with the toolchain CMake was given.
      string(TOUPPER "${NHC_RUST_TARGET}" triple_upper)
      string(REPLACE "-" "_" triple_upper "${triple_upper}")
      string(REPLACE "-" "_" triple_lower "${NHC_RUST_TARGET}")
      if(CMAKE_CROSSCOMPILING)
        list(APPEND cross_env
          "CARGO_TARGET_${triple_upper}_LINKER=${CMAKE_C_COMPILER}"
          "CC_${triple_lower}=${CMAKE_C_COMPILER}"
          "AR_${triple_lower}=${CMAKE_AR}")
      endif()
    endif()
  endif()

  set(cargo_so "${artifact_dir}/libnerves_hub_channel_ffi.so")
  set(cargo_a "${artifact_dir}/libnerves_hub_channel_ffi.a")
  set(devserver "")
  if(NHC_HOST_DEVSERVER)
    # Cross builds: the tests run under an emulator against a dev server
    # built for the build machine (scripts/cross-test.sh).
    set(devserver "${NHC_HOST_DEVSERVER}")
  elseif(NHC_BUILD_TESTS)
    set(devserver "${artifact_dir}/nhc-devserver")
  endif()

  if(NHC_PREBUILT_DIR)
    add_custom_target(nhc_cargo_build)
  else()
    # The dev server gets its own cargo run: built together, cargo would
    # give the library the server's tokio features (the multi-threaded
    # scheduler, and with it libm), so the shipped library would differ
    # with NHC_BUILD_TESTS.
    set(devserver_build "")
    if(NHC_BUILD_TESTS AND NOT NHC_HOST_DEVSERVER)
      set(devserver_build
        COMMAND ${CMAKE_COMMAND} -E env ${cross_env} CARGO_TARGET_DIR=${target_dir}
                ${NHC_CARGO} build --locked ${profile_flag} ${target_flag} -p nhc-devserver ${NHC_CARGO_FLAGS})
    endif()
    add_custom_target(nhc_cargo_build
      COMMAND ${CMAKE_COMMAND} -E env ${cross_env} CARGO_TARGET_DIR=${target_dir}
              ${NHC_CARGO} build --locked ${profile_flag} ${target_flag} -p nerves_hub_channel_ffi ${NHC_CARGO_FLAGS}
      ${devserver_build}
      BYPRODUCTS ${cargo_so} ${cargo_a} $<$<NOT:$<BOOL:${NHC_HOST_DEVSERVER}>>:${devserver}>
      WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
      COMMENT "cargo build (${profile_dir} ${NHC_RUST_TARGET})"
      USES_TERMINAL
      VERBATIM)
  endif()

  # The cargo file names are an implementation detail: C programs link
  # libnerves_hub_channel, whose SONAME ffi/build.rs sets.
  add_custom_command(
    OUTPUT "${real_so}" "${static_lib}"
    COMMAND ${CMAKE_COMMAND} -E copy "${cargo_so}" "${real_so}"
    COMMAND ${CMAKE_COMMAND} -E copy "${cargo_a}" "${static_lib}"
    DEPENDS "${cargo_so}" "${cargo_a}" nhc_cargo_build
    COMMENT "libnerves_hub_channel.so.${PROJECT_VERSION} and .a"
    VERBATIM)
  add_custom_target(nhc_rust_artifacts ALL DEPENDS "${real_so}" "${static_lib}")

  file(CREATE_LINK "libnerves_hub_channel.so.${PROJECT_VERSION}" "${lib_dir}/${soname}" SYMBOLIC)
  file(CREATE_LINK "${soname}" "${lib_dir}/libnerves_hub_channel.so" SYMBOLIC)

  set(NHC_SHARED_LINK "${lib_dir}/libnerves_hub_channel.so" PARENT_SCOPE)
  set(NHC_SHARED_FILES "${real_so}" "${lib_dir}/${soname}" "${lib_dir}/libnerves_hub_channel.so" PARENT_SCOPE)
  set(NHC_STATIC_LIB "${static_lib}" PARENT_SCOPE)
  set(NHC_DEVSERVER "${devserver}" PARENT_SCOPE)
endfunction()
