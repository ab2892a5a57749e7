"""The compact progress line reports each epoch's own metrics."""

import io

import lightning as L
import torch

from optrepro.progress import CompactProgress, fmt_seconds


class LogsTheEpoch(L.LightningModule):
    """Logs train/loss = 10 x (epoch + 1) in its own on_train_epoch_end, as the project's modules do."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0]).pow(2).sum()

    def on_train_epoch_end(self):
        self.log("train/loss", 10.0 * (self.current_epoch + 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(2, 1)), batch_size=1)


def test_each_line_shows_the_loss_of_its_own_epoch():
    stream = io.StringIO()
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[CompactProgress("t", members=1, every=0.0, stream=stream)],
    )
    trainer.fit(LogsTheEpoch())
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/3", "2/3", "3/3"]
    assert [float(line.split("train/loss ")[1].split()[0]) for line in lines] == [10.0, 20.0, 30.0]


def test_fmt_seconds():
    assert fmt_seconds(59.9) == "0:59"
    assert fmt_seconds(3725) == "1:02:05"
