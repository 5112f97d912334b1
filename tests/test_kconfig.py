from harness.kconfig import check_fragments, parse_config


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
