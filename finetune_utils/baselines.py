"""Baselines that need no pre-trained model: the majority class and TF-IDF + logistic regression.

They set the bar a fine-tuned encoder has to clear: if a bag-of-words model
already solves a task, pre-training buys little; where it fails (negation,
sarcasm, paraphrase), the pre-trained encoder shows its worth.
"""

from __future__ import annotations

import numpy as np

from .evaluation import scores


def majority(train_labels, test_labels) -> dict:
    """Scores of always predicting the most frequent training label. Taught in lesson 01."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    guess = values[counts.argmax()]
    return scores(test_labels, [guess] * len(test_labels))


def pair_texts(first, second, sep: str = " [SEP] ") -> list[str]:
    """Join sentence pairs into one string each, for bag-of-words models. Taught in lesson 05."""
    return [a + sep + b for a, b in zip(first, second)]


def choose_c(fit, cs, val_inputs, val_labels):
    """Fit one classifier per regularisation strength and keep the best on validation.

    ``fit(c)`` returns a fitted classifier; the one with the highest validation macro-F1
    on ``val_inputs`` wins (the first C on ties). Returns ``(classifier, c)``. Shared by
    :func:`tfidf_logreg` and :func:`finetune_utils.diagnostics.embedding_logreg`.
    """
    best, best_c, best_f1 = None, None, -1.0
    val_labels = list(val_labels)
    for c in cs:
        model = fit(c)
        f1 = scores(val_labels, model.predict(val_inputs))["macro_f1"]
        if f1 > best_f1:
            best, best_c, best_f1 = model, c, f1
    return best, best_c


def tfidf_logreg(train_texts, train_labels, val_texts=None, val_labels=None, cs=(0.1, 1.0, 10.0, 100.0), seed: int = 0):
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + logistic regression. Taught in lesson 02.

    The regularisation strength C is chosen on the validation set by macro-F1 when
    one is given (a fair, tuned baseline), else C=10. Returns the fitted
    scikit-learn pipeline; ``pipeline.C_`` records the chosen C.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from .env import one_blas_thread

    train_texts, train_labels = list(train_texts), list(train_labels)
    # The vocabulary and idf do not depend on C: fit the vectorizer once, then one classifier per C.
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True)
    x_train = vectorizer.fit_transform(train_texts)

    def fit(c):
        return LogisticRegression(C=c, max_iter=5000, class_weight="balanced", random_state=seed).fit(x_train, train_labels)

    with one_blas_thread():  # many tiny BLAS calls: one thread is several times faster
        if val_texts is None:
            clf, best_c = fit(10.0), 10.0
        else:
            clf, best_c = choose_c(fit, cs, vectorizer.transform(list(val_texts)), val_labels)
    best = make_pipeline(vectorizer, clf)
    best.C_ = best_c
    return best
