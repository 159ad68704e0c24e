"""Every command's rendering, diffed against reviewed golden files.

The numbers in them are checked elsewhere against independent oracles (hooks,
FlopCounterMode, torchinfo, hand counts); these files pin the *presentation*, so a
change of layout or wording shows as a readable text diff."""
import pytest

from cli_helpers import run_cli

CASES = [
    ("profile_unet", ["profile", "unet"]),
    ("profile_resnet18_depth2_markdown",
     ["profile", "torchvision:resnet18", "--depth", "2", "--format", "markdown"]),
    ("profile_cnn_course_json", ["profile", "cnn", "--convention", "course", "--format", "json"]),
    ("derive_cnn_nf_nc", ["derive", "cnn", "--symbols", "NF,NC"]),
    ("derive_resnet18_hw", ["derive", "torchvision:resnet18", "--symbols", "H,W"]),
    ("finetune_stack_cnn", ["finetune", "--no-measure", "--model", "stack,cnn", "--layers", "1,2"]),
    ("finetune_unet_markdown", ["finetune", "--no-measure", "--model", "unet", "--mode",
                                "full,last", "--size", "32", "--format", "markdown"]),
    ("finetune_stack_json", ["finetune", "--no-measure", "--model", "stack", "--layers", "2",
                             "--format", "json"]),
]


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_command_rendering(capsys, golden, name, argv):
    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    golden(name, out)


def test_counts_report_table(golden):
    from complexity.counting import report
    from complexity.reproduce import counts as report_counts

    results = report.build(["cnn", "unet"], ["lecture", "course"], report_counts.PARAMS)
    golden("counts_report_markdown", report_counts.markdown(results))


def test_finetune_report_tables(golden):
    from complexity.cost import finetune
    from complexity.output import finetune as finetune_report

    results = finetune.sweep(["stack"], [1, 2, 4], [(8, 8), (16, 16)], [2], ["full", "last"],
                             width=4, measured=False)
    golden("finetune_report_markdown", finetune_report.render(results, "markdown"))
