# clusterctl: see README.md. Everything here runs on a fresh Linux machine
# with Go and a Docker engine; lab, test and bench need root.

GO      ?= go
BIN     := bin/clusterctl
IMAGES  := bin/images
SAMPLES := kvdb web
export CGO_ENABLED := 0
# The classic builder: FROM scratch images need no BuildKit, and the hosts'
# engines may be too old for it.
export DOCKER_BUILDKIT := 0

.PHONY: build images test test-unit test-e2e lab demo screenshot bench clean

## build: the static binary bin/clusterctl
build:
	$(GO) build -trimpath -o $(BIN) ./cmd/clusterctl

## images: sample images (FROM scratch) built with the machine's Docker, saved to bin/images
images:
	@mkdir -p $(IMAGES)
	@for s in $(SAMPLES); do \
		ctx=build/samples/$$s; mkdir -p $$ctx; \
		$(GO) build -trimpath -o $$ctx/$$s ./samples/$$s && \
		cp samples/$$s/Dockerfile $$ctx/ && \
		docker build -q -t sample/$$s:latest $$ctx >/dev/null || exit 1; \
		echo "built sample/$$s:latest"; \
	done
	docker save -o $(IMAGES)/samples.tar $(foreach s,$(SAMPLES),sample/$(s):latest)

## test: unit tests, then end-to-end tests on a real lab (root, dockerd)
test: build images test-unit test-e2e

test-unit:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) test -count=1 ./...

test-e2e:
	$(GO) test -count=1 -tags e2e -timeout 20m -v ./e2e/...

## demo: the DockerCon 2015 migration demo on a 3-host lab (it stays up: bin/clusterctl lab down)
demo: build images
	$(BIN) demo --images $(IMAGES) -f samples/dockercon/compose.yml

## screenshot: docs/dashboard.png, the dashboard during a move (needs tmux)
screenshot: build images
	$(GO) run ./tools/screenshot -bin $(BIN) -images $(IMAGES) -o docs/dashboard.png

## lab: a 3-host lab with the sample images
lab: build images
	$(BIN) lab up

## bench: lab up/down times; control plane writes, reads and failover; up against docker-compose; placements committed per second at 5000 hosts / 1M tasks; volume moves against a tar stream; the overlay against the hosts' own network; what clients see of a move (256 MiB and 2 GiB of data) against a naive one
bench: build images
	$(GO) run ./bench/labtime -bin $(BIN)
	$(GO) run ./bench/raftbench -bin $(BIN)
	$(GO) run ./bench/uptime -bin $(BIN) -images $(IMAGES)
	$(GO) run ./bench/volmove -bin $(BIN) -images $(IMAGES)
	$(GO) run ./bench/overlay -bin $(BIN) -images $(IMAGES)
	$(GO) run ./bench/migrate -bin $(BIN) -images $(IMAGES) -size 256
	$(GO) run ./bench/migrate -bin $(BIN) -images $(IMAGES) -size 2048
	# last: it uses and frees nearly 2 GiB, which this VM makes slow to write into again (docs/BENCHMARKS.md)
	$(BIN) bench scheduler --hosts 5000 --tasks 1000000 --memory-limit 1800MiB

clean:
	rm -rf bin build
