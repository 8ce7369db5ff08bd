import json

import pytest
import yaml

from llm_roofline import catalog
from llm_roofline.errors import UserError
from llm_roofline.hardware import Hardware, load_hardware


def test_every_shared_device_is_shipped_with_its_id():
    shared = catalog.CATALOG_DIR.parents[3] / "shared" / "data" / "hardware.yaml"
    if not shared.exists():
        pytest.skip("../shared not beside the checkout")
    ids = [r["id"] for r in yaml.safe_load(shared.read_text())]
    added = yaml.safe_load((catalog.CATALOG_DIR.parents[2] / "data" / "hardware-added.yaml").read_text())
    ids += [r["id"] for r in added if "id" in r]  # the project's added devices follow the shared ones
    assert [r["id"] for r in catalog.hardware_records()] == ids


@pytest.mark.parametrize("alias,hid", [("h100", "nvidia-h100-sxm5-80gb"), ("H100-SXM", "nvidia-h100-sxm5-80gb"),
                                       ("4090", "nvidia-rtx-4090"), ("rtx-4090", "nvidia-rtx-4090"),
                                       ("m2-ultra", "apple-m2-ultra"), ("mi300x", "amd-mi300x"),
                                       ("a100-80gb", "nvidia-a100-sxm4-80gb"), ("RTX 4090", "nvidia-rtx-4090"),
                                       ("nvidia-h200-sxm-141gb", "nvidia-h200-sxm-141gb"),
                                       ("3060", "nvidia-rtx-3060-12gb"), ("rtx-3080", "nvidia-rtx-3080-10gb"),
                                       ("a40", "nvidia-a40"), ("2080-ti", "nvidia-rtx-2080-ti")])
def test_aliases(alias, hid):
    assert load_hardware(alias).id == hid


def test_figures_and_ridge_point():
    h = load_hardware("h100")
    assert h.bandwidth_gbps == 3350 and h.memory_gb == 80
    assert h.peak("fp16") == (989.5, "fp16")
    assert h.ridge_point() == pytest.approx(989.5e12 / 3350e9)
    assert h.link_gbps == 450  # 900 GB/s NVLink both ways
    assert h.sources and h.confidence == "high"


def test_peak_fallbacks():
    a100 = load_hardware("a100")
    assert a100.peak("fp8") == (312, "fp16")  # no FP8 units on Ampere
    m2 = load_hardware("m2-ultra")
    assert m2.peak("int8") == (27.2, "fp16")
    assert load_hardware("m5").peak("fp16") == (None, "fp16")
    # GeForce: the catalog's fp16 is the fp32-accumulate rate; the physical peak (fp16 accumulate) is twice it
    assert load_hardware("4090").peak("fp16") == (2 * 165.2, "fp16")
    assert load_hardware("4090").peak("int8") == (660.6, "int8")
    assert load_hardware("rtx-6000-ada").peak("fp16") == (364.2, "fp16")  # pro cards: full rate already


def test_unknown_device_names_closest():
    with pytest.raises(UserError, match="closest: h100"):
        load_hardware("h10")


def test_device_file(tmp_path):
    path = tmp_path / "box.json"
    path.write_text(json.dumps({"bandwidth_gbps": 100, "memory_gb": 16, "peak_tflops": {"fp16": 10},
                                "category": "desktop_cpu"}))
    h = load_hardware(path)
    assert h.id == "box" and h.device_class == "cpu"
    path.write_text(json.dumps({"memory_gb": 16}))
    with pytest.raises(UserError, match="bandwidth_gbps"):
        load_hardware(path)
    with pytest.raises(UserError, match="does not exist"):
        load_hardware(tmp_path / "nope.json")


def test_measured_streaming_rate_by_size_and_shape():
    """A profile's matmul rows: 1 MiB and 4 MiB matrices, square (out/in 1) and tall (out/in 4), one vector.
    Rates chosen so each lookup can be worked out by hand (log-log interpolation, fewer rows beyond the range)."""
    rows = [{"dtype": "bf16", "vectors": 1, "matrix_bytes": size, "aspect": aspect, "gbps": rate}
            for size, aspect, rate in ((2**20, 1.0, 10.0), (2**22, 1.0, 40.0), (2**20, 4.0, 5.0), (2**22, 4.0, 20.0))]
    hw = Hardware.from_record({"id": "p", "name": "p", "category": "desktop_cpu", "memory_gb": 16,
                               "bandwidth_gbps": 40, "roofline": rows})
    assert hw.weight_stream_gbps("bf16", 1, 2**20, 1.0) == pytest.approx(10.0)
    assert hw.weight_stream_gbps("bf16", 1, 2**21, 1.0) == pytest.approx(20.0)  # halfway in log size
    assert hw.weight_stream_gbps("bf16", 1, 2**20, 2.0) == pytest.approx(5 * 2**0.5)  # halfway in log aspect
    assert hw.weight_stream_gbps("fp16", 1, 2**22, 4.0) == pytest.approx(20.0)  # fp16 falls back to bf16
    # 16x taller than the tallest measured: as 1/4 as many rows of the same length, a 1 MiB matrix of aspect 4
    assert hw.weight_stream_gbps("bf16", 1, 2**22, 16.0) == pytest.approx(5.0)
    # 64 MiB square: 16 times the largest size, taken as 1/16 of the rows: 4 MiB at aspect 1/16 (clamped to 1)
    assert hw.weight_stream_gbps("bf16", 1, 2**26, 1.0) == pytest.approx(40.0)
    assert hw.weight_stream_gbps("fp32", 1, 2**20, 1.0) is None  # no fp32 rows measured
    # a profile written before shapes were measured: its rows are square matrices
    old = Hardware.from_record({"id": "p", "name": "p", "category": "desktop_cpu", "memory_gb": 16,
                                "bandwidth_gbps": 40, "roofline": [{k: v for k, v in r.items() if k != "aspect"}
                                                                   for r in rows if r["aspect"] == 1.0]})
    assert old.weight_stream_gbps("bf16", 1, 2**21) == pytest.approx(20.0)


def test_buffers_beyond_the_cache_read_at_one_memory_rate():
    """A 32 MiB cache; reads of 4 MiB (in cache), 64 MiB (2x: partly cached), then 256 MiB at 48 GB/s and 1 GiB at
    30 GB/s: both stream from memory, so both are the memory's rate, the faster (a ceiling must not be beaten),
    and the 64 MiB buffer, slower than that as measured, is not slower than memory."""
    mib = 2**20
    bandwidth = [{"bytes": b * mib, "read_gbps": g} for b, g in ((4, 100.0), (64, 33.0), (256, 48.0), (1024, 30.0))]
    rec = {"id": "p", "name": "p", "category": "desktop_cpu", "memory_gb": 16, "bandwidth_gbps": 30,
           "bandwidth": bandwidth, "cache_bytes": 32 * mib,
           "roofline": [{"dtype": "fp32", "vectors": 1, "matrix_bytes": mib, "aspect": 1.0, "gbps": 10.0}]}
    hw = Hardware.from_record(rec)
    assert hw.bandwidth_curve == ((4 * mib, 100.0), (64 * mib, 48.0), (256 * mib, 48.0), (1024 * mib, 48.0))
    assert hw.bandwidth_at(216e6) == pytest.approx(48.0) and hw.bandwidth_at(4e9) == 48.0
    assert hw.bandwidth_at(16 * mib) == pytest.approx(100 * (48 / 100) ** 0.5)  # halfway in log size from 4 to 64
    # older CPU profiles name the cache under machine; without a cache size the curve is as measured
    old = Hardware.from_record({**{k: v for k, v in rec.items() if k != "cache_bytes"},
                                "machine": {"last_level_cache_bytes": 32 * mib}})
    assert old.bandwidth_curve == hw.bandwidth_curve
    raw = Hardware.from_record({k: v for k, v in rec.items() if k != "cache_bytes"})
    assert raw.bandwidth_curve[2:] == ((256 * mib, 48.0), (1024 * mib, 30.0))
    # a working set in memory streams its matmuls at the measured matmul rate itself (the matmul rows were
    # measured on stacks beyond the cache): a 1 MiB fp32 square matrix at 10 GB/s, one vector, 20 layers
    from llm_roofline import predict

    spec = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 512, "num_attention_heads": 8,
            "num_key_value_heads": 8, "vocab_size": 32, "num_hidden_layers": 20, "tie_word_embeddings": False}
    from llm_roofline.architecture import spec_from_config

    p = predict(spec_from_config(spec, "square"), hw, weights="f32", batch=1, prompt=1, gen=2,
                step_overhead_us=0)
    mlp = next(o for o in p.to_dict()["operators"] if o["phase"] == "decode" and o["name"] == "mlp")
    assert mlp["estimate_ms"] == pytest.approx(20 * 3 * mib / 10e9 * 1e3, rel=1e-6)  # gate, up, down: 3 MiB a layer

def test_quantized_matmul_rate_is_capped_per_sm():
    # A100: 108 SMs x 1.41 GHz x 2048 int8 ops = 311.9 TOPS, half its 624 TOPS int8 tensor peak
    assert load_hardware("a100").quantized_matmul_tops == pytest.approx(2048 * 108 * 1.41e9 / 1e12)
    # RTX 4090: 128 x 2.52 GHz x 2048 = 660.6, the int8 peak itself (GeForce tensor cores are 2048 wide)
    assert load_hardware("4090").quantized_matmul_tops == pytest.approx(660.6, rel=1e-3)
    # no SM count in the record: the int8 peak
    assert load_hardware("mi300x").quantized_matmul_tops == load_hardware("mi300x").peak_tflops["int8"]


def test_integer_weights_run_on_the_faster_units():
    # V100: fp16 tensor cores 125 TFLOPS, int8 only as dp4a (62.8): quantised weights are multiplied in fp16
    assert load_hardware("v100").peak("int8") == (125.0, "fp16")
    assert load_hardware("4090").peak("int8") == (660.6, "int8")
    assert load_hardware("nvidia-gtx-1080-ti").peak("int8") == (45.4, "int8")  # Pascal: dp4a, no usable fp16


def test_memory_technology():
    assert load_hardware("a100").hbm and load_hardware("nvidia-a30").hbm
    assert not load_hardware("4090").hbm and not load_hardware("m2-ultra").hbm


def test_added_devices_peaks_follow_sms_and_clock():
    """Each added record's peaks are SMs x boost clock x the architecture's per-SM rate (data/hardware-added.yaml);
    recompute two by hand: RTX 3060 28 SMs x 1.777 GHz x 256 fp32 = 12.74 TFLOPS, x 2048 int8 = 101.9 TOPS; A30
    56 x 1.44 GHz x 4096 int8 = 330.3 TOPS."""
    gpu = load_hardware("nvidia-rtx-3060-12gb")
    assert gpu.peak_tflops["fp32"] == pytest.approx(28 * 1.777 * 256 / 1e3, rel=2e-3)
    assert gpu.peak_tflops["int8"] == pytest.approx(28 * 1.777 * 2048 / 1e3, rel=2e-3)
    assert load_hardware("nvidia-a30").peak_tflops["int8"] == pytest.approx(56 * 1.44 * 4096 / 1e3, rel=2e-3)


def test_tensor_cores():
    assert all(load_hardware(h).tensor_cores for h in ("v100", "t4", "3090", "4090", "a100", "rtx-6000-ada"))
    assert not any(load_hardware(h).tensor_cores for h in ("nvidia-gtx-1080-ti", "nvidia-tesla-p100-pcie-16gb",
                                                           "nvidia-gtx-1660", "m2-ultra", "7900-xtx"))


def test_sm_cycles_per_second():
    # RTX 4090: 128 SMs x 2.52 GHz; M2 Ultra has no SM count in its record: fp32 27.2 TFLOPS / 256 FLOP per
    # core-clock = 106e9, i.e. its 76 GPU cores x 1.4 GHz
    assert load_hardware("4090").sm_cycles_per_s == pytest.approx(128 * 2.52e9)
    assert load_hardware("m2-ultra").sm_cycles_per_s == pytest.approx(27.2e12 / 256)
    assert load_hardware("m2-ultra").sm_cycles_per_s == pytest.approx(76 * 1.4e9, rel=0.01)
