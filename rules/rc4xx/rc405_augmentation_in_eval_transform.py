from recipecheck.finding import Severity
from recipecheck.program import torchnames as tn
from recipecheck.program.data import call_arg, data_model, eval_context_of_call, is_eval_name
from recipecheck.program.imports import dotted_name
from recipecheck.rule import Context, Rule


class AugmentationInEvalTransform(Rule):
    """
    ## What it does
    Flags random data augmentation (`RandomCrop`, `RandomResizedCrop`, `RandomHorizontalFlip`,
    `ColorJitter`, `RandomErasing`, `RandAugment`, `AutoAugment`, `TrivialAugmentWide`, ...,
    and their albumentations/kornia counterparts) in the transform of a validation or test
    dataset. The dataset is recognized by `train=False`, `split="val"`/`"test"`, a `val`/`test`
    folder (`ImageFolder(valdir, ...)`, `os.path.join(root, "val")`), or the name it is
    assigned to (`val_set`, `test_dataset`) or of the loader built from it; the transform is
    followed through variables, `Compose([...])`, dictionaries of transforms
    (`data_transforms["train"]`) and `.transform = ...` assignments. A validation split made
    with `random_split` (or a `Subset` of held-out indices read by the validation loader) from a
    dataset whose transform augments is flagged too.

    ## Why is this bad?
    Evaluation must be deterministic and measure the model on the real input distribution.
    Random crops, flips and color jitter make every evaluation of the same checkpoint give a
    different score, add noise to model selection and early stopping, and systematically
    lower the measured accuracy (the augmented inputs are harder than the real ones).

    Measured (`recipecheck validate RC405`, seeds 0-4): range of the test accuracy over 10
    evaluations of the same model: 0.11 [0.0713, 0.138] with RandomCrop in the eval transform vs
    0 [0, 0] with deterministic eval transform (mean [min, max]); the claim held on 5 of 5
    seeds.

    ## Known problems
    Test-time augmentation (averaging predictions over several augmented views) is a
    deliberate technique: transforms or datasets named `tta` are skipped; otherwise add
    `# noqa: RC405`. A transform built by a helper that takes a `train` flag is followed only
    when the call asks for the training variant (`build_transform(train=True)`, `("train")`).

    ## Example
    ```python
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
    val_set = datasets.ImageFolder(valdir, transform=train_tf)
    ```

    ## Use instead
    ```python
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    val_set = datasets.ImageFolder(valdir, transform=val_tf)
    ```

    ## Options
    None.

    ## Fix safety
    No automatic fix.

    ## References
    - PyTorch ImageNet example (`Resize` + `CenterCrop` for validation).
    - torchvision docs, "Transforming and augmenting images".
    """

    CODE = "RC405"
    NAME = "augmentation-in-eval-transform"
    SEVERITY = Severity.WARNING
    MESSAGE = "random augmentation in a validation/test transform"
    VALID = (
        "import torchvision.transforms as T\nfrom torchvision import datasets\n"
        "train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])\n"
        "test_tf = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])\n"
        "train_set = datasets.CIFAR10('data', train=True, transform=train_tf)\n"
        "test_set = datasets.CIFAR10('data', train=False, transform=test_tf)\n",
        # the tutorial's dictionary of transforms, picked per split
        "import os\nfrom torchvision import datasets, transforms\n"
        "data_transforms = {'train': transforms.Compose([transforms.RandomResizedCrop(224), transforms.ToTensor()]),\n"
        "                   'val': transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])}\n"
        "val_set = datasets.ImageFolder(os.path.join(root, 'val'), data_transforms['val'])\n",
        # test-time augmentation, on purpose
        "import torchvision.transforms as T\nfrom torchvision import datasets\n"
        "tta_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])\n"
        "test_set = datasets.CIFAR10('data', train=False, transform=tta_tf)\n",
        # the factory asked for the evaluation variant
        "import torchvision.transforms as T\nfrom torchvision import datasets\n"
        "def build_transform(train):\n    if train:\n        return T.Compose([T.RandomResizedCrop(224), T.ToTensor()])\n"
        "    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])\n"
        "val_set = datasets.ImageFolder('data/val', build_transform(train=False))\n",
        # the validation rows come from a second copy of the training data, with the test transform
        "import torch\nfrom torchvision import datasets, transforms as T\n"
        "train_tf = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])\ntest_tf = T.ToTensor()\n"
        "train_set = datasets.CIFAR10('d', train=True, transform=train_tf)\n"
        "valid_copy = datasets.CIFAR10('d', train=True, transform=test_tf)\n"
        "idx = torch.randperm(len(train_set))\nvalid_set = torch.utils.data.Subset(valid_copy, idx[:5000])\n"
        "train_set = torch.utils.data.Subset(train_set, idx[5000:])\n"
        "valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=64)\n",
    )
    INVALID = (
        # a Subset of the augmented training set serves as the validation set
        "import torch\nfrom torchvision import datasets, transforms as T\n"
        "train_tf = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])\n"
        "train_set = datasets.CIFAR10('d', train=True, transform=train_tf)\n"
        "idx = torch.randperm(len(train_set))\nvalid_set = torch.utils.data.Subset(train_set, idx[:5000])\n"
        "train_set = torch.utils.data.Subset(train_set, idx[5000:])\n"
        "valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=64)  # expect: RC405\n",
        "import torchvision.transforms as T\nfrom torchvision import datasets\n"
        "train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])\n"
        "val_set = datasets.ImageFolder(valdir, transform=train_tf)  # expect: RC405\n",
        "from torchvision import datasets, transforms\n"
        "test_set = datasets.CIFAR10('data', train=False,\n"
        "    transform=transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.ToTensor()]))  # expect: RC405\n",
        "from torch.utils.data import DataLoader\nfrom torchvision import datasets, transforms as T\n"
        "aug = T.Compose([T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor()])\n"
        "test_loader = DataLoader(datasets.ImageFolder('data/test', aug), batch_size=64)  # expect: RC405\n",
        # a transform factory asked for its training variant
        "import torchvision.transforms as T\nfrom torchvision import datasets\n"
        "def build_transform(train):\n    if train:\n        return T.Compose([T.RandomResizedCrop(224), T.ToTensor()])\n"
        "    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])\n"
        "train_set = datasets.ImageFolder('data/train', build_transform(train=True))\n"
        "val_set = datasets.ImageFolder('data/val', build_transform(train=True))  # expect: RC405\n",
        # the SubsetRandomSampler idiom over the augmented training dataset
        "from torch.utils.data import DataLoader, SubsetRandomSampler\nfrom torchvision import datasets, transforms as T\n"
        "aug = T.Compose([T.RandomCrop(32, padding=4), T.ToTensor()])\n"
        "train_dataset = datasets.CIFAR10('data', train=True, transform=aug)\n"
        "train_loader = DataLoader(train_dataset, batch_size=64, sampler=SubsetRandomSampler(train_idx))\n"
        "valid_loader = DataLoader(train_dataset, batch_size=64,  # expect: RC405\n"
        "                          sampler=SubsetRandomSampler(valid_idx))\n",
    )

    def check(self, ctx: Context) -> None:
        p = ctx.program
        dm = data_model(p)
        for cs in p.calls:
            call = cs.node
            tf = call_arg(call, "transform", None)
            name = tn.last(cs.qualname or cs.dotted or "")
            if tf is None and name in ("ImageFolder", "DatasetFolder"):
                tf = call_arg(call, None, 1 if name == "ImageFolder" else 2)
            if tf is None or eval_context_of_call(dm, call, cs.function) != "eval":
                continue
            if "tta" in ctx.code(tf).lower() or any("tta" in t.lower() for t in dm.targets.get(id(call), [])):
                continue
            augs = dm.augmentations(cs.function, tf)
            if augs:
                self._report(ctx, tf, augs, dm.targets.get(id(call), ["this evaluation dataset"])[0])
        # val_set.transform = train_tf
        for a in p.assignments:
            if not a.target.endswith(".transform") or a.value is None or a.augmented is not None:
                continue
            owner = a.target[: -len(".transform")]
            if owner.endswith(".dataset"):
                owner = owner[: -len(".dataset")]
            if not is_eval_name(owner) or "tta" in owner.lower():
                continue
            augs = dm.augmentations(a.function, a.value)
            if augs:
                self._report(ctx, a.value, augs, owner)
        # valid_loader = DataLoader(train_dataset, sampler=SubsetRandomSampler(valid_idx))
        for c in p.constructions("loader"):
            evals = [t for t in dm.targets.get(id(c.node), []) if is_eval_name(t)]
            ds = dm.dataset_of(c)
            if not evals or ds is None or "tta" in evals[0].lower():
                continue
            for d in _through_subsets(p, p.evaluate(c.function, ds)):
                tf = d.arg("transform")
                if tf is None or eval_context_of_call(dm, d.node, d.function) == "eval":
                    continue  # an evaluation dataset is reported at its own transform
                augs = dm.augmentations(d.function, tf)
                if augs:
                    aug = dotted_name(augs[0].func) or "augmentation"
                    ctx.report(ds, (
                        f"{evals[0]} reads {ctx.code(ds)}, whose transform applies {aug}: the "
                        "validation images are randomly augmented, so its score is noisy and biased; "
                        "give the validation loader a dataset with a deterministic transform (RC405)"))
                    break
        # train_set, val_set = random_split(augmented_dataset, [...])
        for sp in dm.splits:
            if not sp.how.startswith("random_split"):
                continue
            targets = dm.targets.get(id(sp.node), [])
            evals = [t for t in targets if is_eval_name(t)]
            if not evals or any(a.target in (f"{e}.dataset.transform", f"{e}.transform")
                                for e in evals for a in p.assignments):
                continue
            ds = call_arg(sp.node, "dataset", 0)
            for c in p.evaluate(sp.function, ds) if ds is not None else []:
                tf = c.arg("transform")
                if tf is None:
                    continue
                augs = dm.augmentations(c.function, tf)
                if augs:
                    aug = dotted_name(augs[0].func) or "augmentation"
                    ctx.report(sp.node, (
                        f"{evals[0]} is split off {ctx.code(ds)}, whose transform applies {aug}: the "
                        "validation images are randomly augmented, so its score is noisy and biased; "
                        "build the validation subset over a dataset with a deterministic transform (RC405)"))
                    break

    @staticmethod
    def _report(ctx: Context, tf, augs, owner: str) -> None:
        names = ", ".join(dict.fromkeys(dotted_name(a.func) or "?" for a in augs))
        ctx.report(tf, (
            f"the transform of {owner} applies random augmentation ({names}): every evaluation of the "
            "same model gives a different, biased score; use a deterministic transform (Resize/CenterCrop, "
            "ToTensor, Normalize) for validation/test data (RC405)"))


def _through_subsets(p, datasets):
    """`Subset(train_set, valid_idx)`: the rows are train_set's, and so is the transform."""
    out = []
    for d in datasets:
        if tn.last(d.qualname) == "Subset" and d.qualname.startswith("torch."):
            inner = d.arg("dataset", 0)
            out += p.evaluate(d.function, inner) if inner is not None else []
        else:
            out.append(d)
    return out
