"""PyTorch bridges: original `.pth`, torchvision ResNet-50, HF DistilBERT / CLIPVision, exif-jax safetensors.

torch is imported only by the functions that read or write `.pth` files and by `torch_reference`.
"""
from exif_jax.convert.formats import (add_prefix, config_from_dict, export_hf, export_original, infer_text_config,
                                      init_from_pretrained, read_hf, read_hf_distilbert, read_original,
                                      read_safetensors, read_torchvision_resnet50, read_weights, save_safetensors,
                                      text_config_from_distilbert)
from exif_jax.convert.mapping import ConversionError, load_torch_state, to_torch_state

__all__ = ["ConversionError", "add_prefix", "config_from_dict", "infer_text_config", "text_config_from_distilbert", "export_hf", "export_original", "init_from_pretrained",
           "load_torch_state", "read_hf", "read_hf_distilbert", "read_original", "read_safetensors",
           "read_torchvision_resnet50", "read_weights", "save_safetensors", "to_torch_state"]
