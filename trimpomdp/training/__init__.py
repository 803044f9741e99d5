"""Training of learned routers (PPO in the simulator); needs torch, imported on use."""
