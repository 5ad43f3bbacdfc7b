"""The model zoo: finding, loading, saving, hashing and converting weights, for every media.

- `files`: the folders searched, reading a state dict without unrestricted pickle, hashes;
- `image`: ncodec's learned image models (``<name>-q<quality>.safetensors``);
- `compressai`: CompressAI's zoo models (architecture and quality) into ncodec's networks;
- `audio`: neural audio models (ncodec's files and EnCodec's ``.th`` checkpoints);
- `convert`: EnCodec's and DAC's checkpoints into ncodec's networks by architecture name;
- `catalogue`: the published checkpoints ncodec runs, with their URLs, hash pins and licences;
- `fetch`: downloading, verifying, converting and caching them, only when asked.

The zoo sits above the networks (`ncodec.models`) and below the codecs. Nothing is downloaded
except by `ncodec.zoo.fetch` (``ncodec fetch``).
"""
from __future__ import annotations

from .audio import (AUDIO_ARCHITECTURES, AudioZooModel, audio_zoo_models, build_audio_model, find_audio_model,
                    load_audio_model, model_identity, save_audio_model)
from .convert import DAC_ARCHITECTURES, ENCODEC_ARCHITECTURES, from_dac, from_encodec
from .compressai import ARCHITECTURES, CONFIGS, compressai_config, from_compressai
from .catalogue import CatalogueEntry, catalogue
from .fetch import load
from .files import BUNDLED_DIR, MODELS_ENV, StateDictOrPath, load_weights, model_dirs, read_metadata, state_dict_hash
from .image import (ALL_ARCHITECTURES, VARIABLE_RATE, ZooModel, architecture_name, build_model, find_model,
                    load_model, save_model, zoo_models)

__all__ = ["ALL_ARCHITECTURES", "ARCHITECTURES", "AUDIO_ARCHITECTURES", "AudioZooModel", "BUNDLED_DIR", "CONFIGS",
           "CatalogueEntry", "catalogue", "load",
           "DAC_ARCHITECTURES", "ENCODEC_ARCHITECTURES", "from_dac", "from_encodec",
           "MODELS_ENV", "StateDictOrPath", "VARIABLE_RATE", "ZooModel", "architecture_name", "audio_zoo_models", "build_audio_model",
           "build_model", "compressai_config", "find_audio_model", "find_model", "from_compressai", "load_audio_model",
           "load_model", "load_weights", "model_dirs", "model_identity", "read_metadata", "save_audio_model",
           "save_model", "state_dict_hash", "zoo_models"]
