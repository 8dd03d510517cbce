"""Fine-tuning on a Dramatis dataset with TRL: recipes, the loss masks, SFT (LoRA or full), the loss curves and their
reading, LoRA merge and export, grids of runs, and a trained model pushed to the Hub.

    .venv/bin/dramatis train train/recipes/demo-lora.yaml     (= make train)
"""
