"""The machine a run trains on, in the few facts that set its speed: a run's wall time means little without
them, since two 2-core CPUs of one family can differ 1.8x in convolution speed by their vector units."""
import os
import platform

# The widest vector extension first: TensorFlow's oneDNN kernels pick their code path by it.
VECTOR_EXTENSIONS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"),
                     ("asimd", "NEON"))


def cpu_facts(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name and widest vector extension, from ``cpuinfo`` where the system has one."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and value.strip():
                    name = value.strip()
                elif key in ("flags", "Features"):  # x86, ARM
                    flags = set(value.split())
                if name and flags and key == "":  # the first processor's block is enough
                    break
    except OSError:
        pass
    vector = next((label for flag, label in VECTOR_EXTENSIONS if flag in flags), "")
    return name, vector


def usable_cores():
    """The cores this process may run on, which a container or ``taskset`` can hold below ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def describe_machine(cpuinfo="/proc/cpuinfo"):
    """``{"cpu", "vector", "cores", "backend", "keras", "tensorflow", "gpus"}``: equal dicts mean runs comparable
    in time. ``tensorflow`` is there where TensorFlow is the backend, ``gpus`` where the backend sees any."""
    import keras

    name, vector = cpu_facts(cpuinfo)
    facts = {"cpu": name, "vector": vector, "cores": usable_cores(), "backend": keras.backend.backend(),
             "keras": keras.__version__}
    if facts["backend"] == "tensorflow":
        import tensorflow as tf

        facts["tensorflow"] = tf.__version__
        gpus = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
                for d in tf.config.list_physical_devices("GPU")]
    elif facts["backend"] == "jax":
        import jax

        gpus = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
    else:
        gpus = []
    if gpus:  # where training runs, then, whatever the CPU
        facts["gpus"] = gpus
    return facts


def machine_line(facts):
    """One machine in words: ``AMD EPYC (AVX2), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0``."""
    if facts is None:
        return "not recorded"
    cpu = facts["cpu"] + (f" ({facts['vector']})" if facts.get("vector") else "")
    backend = f"TensorFlow {facts['tensorflow']}" if "tensorflow" in facts else facts["backend"]
    gpus = f", {' + '.join(facts['gpus'])}" if facts.get("gpus") else ""
    return f"{cpu}, {facts['cores']} cores{gpus}, Keras {facts['keras']} on {backend}"
