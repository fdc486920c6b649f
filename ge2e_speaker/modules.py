"""The speaker encoder (SPEC section 3): prenet, residual LSTM stack, last-frame projection.

Parameter names are the seed's (layer_Dict.Prenet, layer_Dict.LSTM_<i>, layer_Dict.Linear), so
the seed's S_<step>.pkl checkpoints load unchanged.
"""
import torch


class Encoder(torch.nn.Module):
    """Mels [batch, mel_dim, frames] -> raw (unnormalised) embeddings [batch, embedding_size]."""

    def __init__(self, mel_dim: int = 80, lstm_size: int = 256, lstm_stacks: int = 3, embedding_size: int = 256):
        super().__init__()
        self.layer_Dict = torch.nn.ModuleDict()
        self.layer_Dict['Prenet'] = torch.nn.Linear(mel_dim, lstm_size)
        for index in range(lstm_stacks):
            self.layer_Dict[f'LSTM_{index}'] = torch.nn.LSTM(input_size=lstm_size, hidden_size=lstm_size)
        self.layer_Dict['Linear'] = torch.nn.Linear(lstm_size, embedding_size)
        self.lstm_stacks = lstm_stacks
        for name in ('Prenet', 'Linear'):
            torch.nn.init.xavier_uniform_(self.layer_Dict[name].weight)
            torch.nn.init.zeros_(self.layer_Dict[name].bias)

    @classmethod
    def from_hyper_parameters(cls, hp) -> 'Encoder':
        return cls(hp.Sound.Mel_Dim, hp.Encoder.LSTM.Sizes, hp.Encoder.LSTM.Stacks, hp.Encoder.Embedding_Size)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        x = self.layer_Dict['Prenet'](mels.permute(2, 0, 1))        # [frames, batch, lstm_size]
        for index in range(self.lstm_stacks):
            output = self.layer_Dict[f'LSTM_{index}'](x)[0]         # [frames, batch, lstm_size]
            x = output + x if index < self.lstm_stacks - 1 else output
        return self.layer_Dict['Linear'](x[-1])                     # [batch, embedding_size]
