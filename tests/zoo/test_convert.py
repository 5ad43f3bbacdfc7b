"""`ncodec.zoo.convert`: EnCodec's and DAC's checkpoints, as their publishers save them, into ncodec's networks."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ncodec.errors import ModelFileError
from ncodec.models.audio.dac import DACModel, to_dac_state_dict
from ncodec.models.audio.encodec import SEANetCodecModel, to_encodec_state_dict
from ncodec.zoo import from_dac, from_encodec

pytestmark = pytest.mark.usefixtures("one_thread")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_encodec_checkpoint_file_gives_the_same_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = SEANetCodecModel.encodec_24khz().eval()
    path = tmp_path / "encodec_24khz-d7cc33bc.th"  # EnCodec's own key names, as torch.save writes them
    torch.save(to_encodec_state_dict(source), path)
    model = from_encodec(path, "encodec_24khz")
    assert _same_weights(source, model) and not model.training
    wav = torch.randn(1, 1, 4800)
    assert torch.equal(source.encode(wav, 6.0).codes, model.encode(wav, 6.0).codes)


def test_dac_checkpoint_file_gives_the_same_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = DACModel.dac_16khz().eval()
    path = tmp_path / "weights.pth"  # descript-audio-codec's layout: the state dict beside plain metadata
    torch.save({"state_dict": to_dac_state_dict(source), "metadata": {"kwargs": {"sample_rate": 16000}}}, path)
    assert _same_weights(source, from_dac(path, "dac_16khz"))


def test_refuses_weights_of_another_architecture_unknown_names_and_non_finite_values(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = to_dac_state_dict(DACModel.dac_16khz())
    with pytest.raises(ModelFileError, match="do not fit dac_24khz"):
        from_dac(state, "dac_24khz")
    with pytest.raises(ModelFileError, match="unknown DAC architecture"):
        from_dac(state, "dac_8khz")
    with pytest.raises(ModelFileError, match="unknown EnCodec architecture"):
        from_encodec(state, "encodec_16khz")
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    with pytest.raises(ModelFileError, match="NaN"):
        from_dac(state, "dac_16khz")
    with pytest.raises(ModelFileError, match="not found"):
        from_dac(tmp_path / "absent.pth", "dac_16khz")
