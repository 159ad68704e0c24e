"""Hypothesis strategies over the colourization nets' hyper-parameters NF, NC, k, NIC, H, W."""
from hypothesis import strategies as st

widths = st.integers(1, 64)                       # NF, NC
kernels = st.integers(0, 3).map(lambda i: 2 * i + 1)  # odd k in 1..7
in_channels = st.integers(1, 4)                   # NIC
any_size = st.integers(4, 128)                    # the CNN takes any H, W >= 4
unet_size = st.integers(1, 32).map(lambda i: 4 * i)   # the UNet: multiples of 4 in 4..128


def params(model: str):
    size = unet_size if model == "unet" else any_size
    return st.fixed_dictionaries(
        dict(NF=widths, NC=widths, k=kernels, NIC=in_channels, H=size, W=size))
