"""Write model/model.pth: the state dict of a torch.nn.Linear(3, 2), fitted for a few steps."""
import os

import torch

torch.manual_seed(0)
x = torch.randn(256, 3)
y = x @ torch.tensor([[1.0, -0.5], [2.0, 0.0], [-1.0, 0.5]]) + torch.tensor([0.1, -0.2])
model = torch.nn.Linear(3, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
for _ in range(200):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
os.makedirs("model", exist_ok=True)
torch.save(model.state_dict(), os.path.join("model", "model.pth"))
