import lzma

import pytest

from harness.errors import ConfigError
from harness.stages.kconfig import check_fragments, fragments_digest, parse_config, read_base


def test_parse_config_reads_values_and_not_set():
    cfg = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# comment\n")
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x y"'}


def test_check_names_lost_options_and_tolerates_absent_symbols():
    requested = {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_KASAN": "y", "CONFIG_NEW_TEST": "y"}
    final = {"CONFIG_A": "y"}
    lost, absent = check_fragments(requested, final, known={"A", "B", "KASAN"})
    assert lost == ["CONFIG_KASAN=y (got not set)"]
    assert absent == ["CONFIG_NEW_TEST"]


def test_value_mismatch_is_lost():
    lost, _ = check_fragments({"CONFIG_HZ": "1000"}, {"CONFIG_HZ": "250"}, {"HZ"})
    assert lost == ["CONFIG_HZ=1000 (got 250)"]


def test_builds_object_follows_the_makefiles_gates(tmp_path):
    from harness.stages.kconfig import builds_object

    (tmp_path / "Kbuild").write_text("obj-y += mm/\nobj-$(CONFIG_IO_URING) += io_uring/\n")
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm/Makefile").write_text(
        "KCOV_INSTRUMENT_memcontrol.o := n\nobj-y := slub.o \\\n\tutil.o\n"
        "obj-$(CONFIG_MEMCG) += memcontrol.o vmpressure.o\n")
    (tmp_path / "io_uring").mkdir()
    (tmp_path / "io_uring/Makefile").write_text("obj-y += filetable.o\n")
    on = {"CONFIG_MEMCG": "y", "CONFIG_IO_URING": "y"}
    for obj in ("mm/memcontrol.o", "mm/util.o", "io_uring/filetable.o", "fs/unlisted.o"):
        assert builds_object(tmp_path, on, obj), obj
    assert not builds_object(tmp_path, {}, "mm/memcontrol.o")
    assert not builds_object(tmp_path, {"CONFIG_MEMCG": "y"}, "io_uring/filetable.o")
    assert builds_object(tmp_path, {}, "mm/slub.o")


def test_base_config_is_read_decompressed_and_named_when_missing(tmp_path):
    text = b"CONFIG_MEMCG=y\n# CONFIG_SWAP is not set\n"
    xz = tmp_path / "config.amd64.xz"
    xz.write_bytes(lzma.compress(text))
    assert read_base(xz) == text
    with pytest.raises(ConfigError, match="linux-config-6.12"):
        read_base(tmp_path / "linux-config-6.12" / "config.xz")


def test_the_base_config_is_part_of_the_build_identity(tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_X=y\n")
    a, b = tmp_path / "a.config", tmp_path / "b.config"
    a.write_text("CONFIG_A=y\n")
    b.write_text("CONFIG_B=y\n")
    tiny = fragments_digest([frag])
    assert len({tiny, fragments_digest([frag], base=a), fragments_digest([frag], base=b)}) == 3
