"""The machine a run records: the CPU's name and vector extension, cores, backend and versions."""
import keras

from kerascnn.machine import cpu_facts, describe_machine, machine_line

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw

processor\t: 1
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw
"""


def test_cpu_facts_name_the_widest_vector_extension(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    assert cpu_facts(cpuinfo) == ("AMD EPYC 9B14", "AVX-512")
    cpuinfo.write_text(X86.replace(" avx512f avx512bw", ""))
    assert cpu_facts(cpuinfo) == ("AMD EPYC 9B14", "AVX2")
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n")  # ARM
    assert cpu_facts(cpuinfo)[1] == "NEON"
    name, vector = cpu_facts(tmp_path / "absent")  # macOS, Windows: the platform's name, no extension
    assert vector == "" and isinstance(name, str)


def test_a_machine_in_words(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    facts = describe_machine(cpuinfo)
    assert facts["cpu"] == "AMD EPYC 9B14" and facts["keras"] == keras.__version__ and facts["cores"] >= 1
    line = machine_line({"cpu": "AMD EPYC", "vector": "AVX2", "cores": 2, "backend": "tensorflow",
                         "keras": "3.15.1", "tensorflow": "2.21.0"})
    assert line == "AMD EPYC (AVX2), 2 cores, Keras 3.15.1 on TensorFlow 2.21.0"
    assert machine_line({"cpu": "Xeon", "vector": "", "cores": 16, "backend": "jax", "keras": "3.15.1",
                         "gpus": ["NVIDIA H100"]}) == "Xeon, 16 cores, NVIDIA H100, Keras 3.15.1 on jax"
    assert machine_line(None) == "not recorded"
