"""The speaker encoder under the seed's module name (`from Modules import Encoder`); it lives in
ge2e_speaker/modules.py."""
from ge2e_speaker.modules import Encoder

__all__ = ['Encoder']
