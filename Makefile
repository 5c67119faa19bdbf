# cord: thin wrapper around CMake. `make` builds, `make test` runs every suite,
# `make run` starts one member on localhost with its data in ./default.cord.
BUILD      ?= build
BUILD_SAN  ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

# Debian packages the build and the tests need; installed when missing.
DEB_PACKAGES = cmake gcc make pkg-config libcmocka-dev liblmdb-dev libuv1-dev \
               libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev \
               python3-pytest python3-grpcio etcd-client etcd-server python3-etcd3 curl nghttp2-client \
               iproute2 iptables

.PHONY: all deps build build-asan test test-unit test-sim run clean format

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing || \
	  { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; }; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_SAN)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DCORD_SANITIZE=ON

build-asan: deps $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j $(JOBS)

# Every suite: unit tests and simulator seeds under ASan+UBSan, then the
# optimised build's simulator for a wider sweep of seeds.
test: build build-asan
	cd $(BUILD_SAN) && ctest --output-on-failure -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

run: build
	$(BUILD)/cord --name default --data-dir default.cord

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
