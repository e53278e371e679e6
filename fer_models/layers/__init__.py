"""Reusable attention layers, one file each (timm's ``layers`` pattern); every layer takes ``channels`` first.

One import line per layer file (keep it that way: several people add layers here).
"""

from fer_models.layers.cbam import CbamModule, SpatialAttn
from fer_models.layers.channel_attn import ChannelAttn
from fer_models.layers.create_attn import create_attn, get_attn
from fer_models.layers.eca import EcaModule
from fer_models.layers.fsa import FastSelfAttention
from fer_models.layers.mhsa import MultiHeadSelfAttention2d
from fer_models.layers.non_local import NonLocalAttn
from fer_models.layers.norm import LayerNorm2d
from fer_models.layers.se import SEModule
from fer_models.layers.se_aspp import SEAsppModule
from fer_models.layers.weight_init import init_conv_bn
