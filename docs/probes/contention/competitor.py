"""The busy neighbour for grad_repeat.py and atomic_sums.py: a PyTorch process on two
threads (or as many as its argument says) that multiplies matrices of random sizes
(200-800) and sleeps 0-5 ms between products, forever (stop it with Ctrl-C or kill)."""

import random
import sys
import time

import torch

if __name__ == "__main__":
    torch.set_num_threads(int(sys.argv[1]) if sys.argv[1:] else 2)
    rng = random.Random(0)
    while True:
        side = rng.randint(200, 800)
        matrix = torch.randn(side, side)
        matrix @ matrix
        time.sleep(rng.uniform(0, 0.005))
